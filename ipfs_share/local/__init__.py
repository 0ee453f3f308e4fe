"""Local state in the ipfs-share home: key files and the SQLite database."""
