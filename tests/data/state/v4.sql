BEGIN TRANSACTION;
CREATE TABLE contacts (
    petname TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    added INTEGER NOT NULL
);
INSERT INTO "contacts" VALUES('bob','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH',1796144163);
INSERT INTO "contacts" VALUES('carol','did:key:z6MkvRXNYcE7MMduynWTgeKbDaT1iijDSC8pZqXZc8rHPrf2',1796144163);
CREATE TABLE feed_staged (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    cid TEXT NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (name, seq)
);
INSERT INTO "feed_staged" VALUES('k51qzi5uqu5dj613kf6cyfjfmpfi5zyzr7b5agsjhhxupcavbdqmqhbh297c5u',9,'bafyreitop',X'01');
INSERT INTO "feed_staged" VALUES('k51qzi5uqu5dj613kf6cyfjfmpfi5zyzr7b5agsjhhxupcavbdqmqhbh297c5u',8,'bafyreibottom',X'02');
CREATE TABLE feeds_own (
    name TEXT PRIMARY KEY,         -- a feed this home signs: its IPNS name (k51...)
    kind TEXT NOT NULL,            -- 'identity' | 'revocation' | 'mailbox' | ...
    owner TEXT NOT NULL,           -- the local identity (did) that signs its entries
    topic TEXT NOT NULL,           -- which of the owner's feeds of that kind ('' or a peer)
    seq INTEGER NOT NULL,          -- the head entry
    head TEXT NOT NULL,
    head_block BLOB,               -- the head entry's bytes
    pinned TEXT,                   -- the head pinned recursively (kinds pinned by head)
    published_seq INTEGER          -- the newest head whose record went out (NULL: none yet)
);
INSERT INTO "feeds_own" VALUES('k51qzi5uqu5djmw2yvf8kk5cdjc1ddc00o4d5sjwi6f79xzcay9j3gkddw5uu4','identity','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX','',1,'bafyreiad6nq4qgrvsjmf3lp3r5o53lhknf7ijf7pcurqlfzuxdid3ecurm',X'A76176016364696478386469643A6B65793A7A364D6B6F6E334E656364364E6B6B79666F476F48786964327A6E476335394C55334B376D756261526346624C664C5863656E63582073B2D8B76AA9B53660032BC8F5D8BEE3A3AE4E3B3A7FD49ADE81F7347A34AA68637365710163736967584031F29EA716100AA13415B9A723690B3B8685D701F8E74F7086CC0BD4B907C6144DEB4A2645BB821B9C6388DEC1E30253A459B31F5E44E40F114CF87BD638E80267637265617465641A6B49D2006B7265766F636174696F6E73783E6B3531717A693575717535646D376D686A66666579706C6A6E6676767A6F7A6166346C6C356D7764786566736C6D687139306730756E326B6E6A38317675','bafyreiad6nq4qgrvsjmf3lp3r5o53lhknf7ijf7pcurqlfzuxdid3ecurm',1);
INSERT INTO "feeds_own" VALUES('k51qzi5uqu5dm7mhjffeypljnfvvzozaf4ll5mwdxefslmhq90g0un2knj81vu','revocation','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX','',1,'bafyreibhfwuxuoq6g523ri2zh4ak5vfiifepo5bjzou6ins2mxdo6uiree',X'A861760163736571016373696758403347502E698D25027872C232D6E42E4D9F0B2AF802F3FF9BA21C697F9F8EB6836EB80B9145960703616F55D725E70E265550B6202C6DD207F307BB2A7F94240B6470726576D82A58250001711220BC32175752D4E3763355F3FDA00CF713FB7FB7DACA60DAB5D92A095F184828BD64726F6F74D82A58250001711220B844A297CD8D0757DFB9DA8798B93BDDF6468DA81C6F3A35556BEB2C3FBC9B4265636F756E74016669737375657278386469643A6B65793A7A364D6B6F6E334E656364364E6B6B79666F476F48786964327A6E476335394C55334B376D756261526346624C664C5867757064617465641A6B49D205','bafyreibhfwuxuoq6g523ri2zh4ak5vfiifepo5bjzou6ins2mxdo6uiree',NULL);
INSERT INTO "feeds_own" VALUES('k51qzi5uqu5dlungh73g5u143sshrq0aiw4rbjxyntbll46so2v35c1po02cjv','mailbox','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH',0,'bafyreiaj7blhz2ihiskh3btkb4m7od2elt5gath2zmsmjaysmy2me26uy4',X'A76176016373657100637369675840F67CF8C4C1A8A11867E76BC2A747E43F3DC24578461BBA471F6E9DEB26D9DD8C7759C041F54A45F2B504251EB1EC22360FB33868FAB7E7B4D3707ED6BB3A3C026470726576F66473656E741A6B49D21E6673656E64657278386469643A6B65793A7A364D6B6F6E334E656364364E6B6B79666F476F48786964327A6E476335394C55334B376D756261526346624C664C586763617073756C65D82A58250001711220D23060B0C6FEA24A071B6E6A192855307E53ECADEE119EF70846DB899ED5B5E7',NULL,0);
CREATE TABLE feeds_read (
    name TEXT PRIMARY KEY,         -- a feed this home reads: its IPNS name
    kind TEXT NOT NULL,
    signer TEXT NOT NULL,          -- whose entries it holds
    reader TEXT NOT NULL,          -- the local identity it is read for ('' for the home)
    seq INTEGER,                   -- the high-water mark: newest entry verified and
    head TEXT,                     --   connected (NULL: none yet)
    head_block BLOB,               -- the mark's bytes (NULL: not kept)
    checked_at INTEGER NOT NULL,   -- when the mark was last verified against the node
    top_seq INTEGER,               -- verification progress: entries from top down to
    top TEXT,                      --   bottom are verified but not yet connected to
    bottom_seq INTEGER,            --   the mark; they wait in feed_staged
    bottom TEXT,
    below TEXT                     -- the bottom's prev: where the walk resumes
);
INSERT INTO "feeds_read" VALUES('k51qzi5uqu5djmw2yvf8kk5cdjc1ddc00o4d5sjwi6f79xzcay9j3gkddw5uu4','identity','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX','',1,'bafyreiad6nq4qgrvsjmf3lp3r5o53lhknf7ijf7pcurqlfzuxdid3ecurm',X'A76176016364696478386469643A6B65793A7A364D6B6F6E334E656364364E6B6B79666F476F48786964327A6E476335394C55334B376D756261526346624C664C5863656E63582073B2D8B76AA9B53660032BC8F5D8BEE3A3AE4E3B3A7FD49ADE81F7347A34AA68637365710163736967584031F29EA716100AA13415B9A723690B3B8685D701F8E74F7086CC0BD4B907C6144DEB4A2645BB821B9C6388DEC1E30253A459B31F5E44E40F114CF87BD638E80267637265617465641A6B49D2006B7265766F636174696F6E73783E6B3531717A693575717535646D376D686A66666579706C6A6E6676767A6F7A6166346C6C356D7764786566736C6D687139306730756E326B6E6A38317675',1796144163,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "feeds_read" VALUES('k51qzi5uqu5djejcj9das04p3wen7mowcz0z5iq3tw0yxaa8ko01odjley7fdg','identity','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH','',1,'bafyreia277whvocqz2aotadrz7oa2juxwgdxprz3kkrt7ahuiuahlo7lkm',X'A76176016364696478386469643A6B65793A7A364D6B6F39685467674D776A535445614A615055664536747163793278765536426E4E713365336F3871564269794863656E63582097C3B10B4D6C133A78EA5DCC1CF6421D3F81AE37B1F628CE14CA6FCE7730F3336373657101637369675840A33837A84CF361520A1C39F686FBF5EDDFB851E3492065800960F8ABD9C2E097ECC7BE8A6A3CD059C5AF7B88CA7255891A7D8BB19C45A62E5E6DBA273A802B0667637265617465641A6B49D2006B7265766F636174696F6E73783E6B3531717A6935757175356467736A757A37686E306D736C70656A617172717538743231727A6B6239306E366132686231316735696A6C32767974756D63',1796144163,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "feeds_read" VALUES('k51qzi5uqu5dm3hvogw3iovl1y90ha7aqmqd5czq5p91kpf7m836hxsv1ptdqp','identity','did:key:z6MkvRXNYcE7MMduynWTgeKbDaT1iijDSC8pZqXZc8rHPrf2','',1,'bafyreigtg3m6fb5cu5oz7shtzutkukcnwjb7ta63m3daucxzkhkclghzoi',X'A76176016364696478386469643A6B65793A7A364D6B7652584E596345374D4D6475796E575467654B624461543169696A44534338705A71585A633872485072663263656E635820B307AE8660EFAED4D6A65F6640896892EA4A1F0075555C489D1312A2E1677C286373657101637369675840EA8659E638746FF2FC6E2E1183B8117C104BF0FD924916C00B63E025D98E16DDF42BB05E9245BA23497FF3579BCA791B0DD7CBC141AB964757B22121497C1D0767637265617465641A6B49D2006B7265766F636174696F6E73783E6B3531717A69357571753564696779736F387766696F376B6271346E716733366C733730396F616B327A726C69366E316435786834627271746D64307079',1796144163,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "feeds_read" VALUES('k51qzi5uqu5digyso8wfio7kbq4nqg36ls709oak2zrli6n1d5xh4brqtmd0py','revocation','did:key:z6MkvRXNYcE7MMduynWTgeKbDaT1iijDSC8pZqXZc8rHPrf2','',0,'bafyreic5lgu2mnyar4pug6qk6wlev4cxnpqnwgv7fafg57xoj5envdhtz4',X'A861760163736571006373696758400411FF6CCD98C6ED2BC2404547A289F21094B184E2E6C85D9DBD5A817A8BBC4732D8E479C49E4276EEA8C53A3CDD9AAD11AE41F172BDBABAC5EE18CE64FD510F6470726576F664726F6F74D82A58250001711220D32C5ABFE102781F4AB3B005A617905F8B251CB6B3DA9C4B3B1025FBF805DD1B65636F756E74016669737375657278386469643A6B65793A7A364D6B7652584E596345374D4D6475796E575467654B624461543169696A44534338705A71585A633872485072663267757064617465641A6B49D200',1800000020,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "feeds_read" VALUES('k51qzi5uqu5dj613kf6cyfjfmpfi5zyzr7b5agsjhhxupcavbdqmqhbh297c5u','mailbox','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX',0,'bafyreidexpxp43dx4ljaua2oqna4val3iu2ndenqbvkudhsqqggbmva55u',NULL,1796144163,9,'bafyreitop',8,'bafyreibottom','bafyreibelow');
CREATE TABLE files (
    cid TEXT PRIMARY KEY,          -- the envelope's content CID
    owner TEXT NOT NULL,           -- did of the identity that put it
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,         -- plaintext bytes
    stanza BLOB NOT NULL,          -- the file key wrapped to the owner's own X25519 key
    created INTEGER NOT NULL,
    state TEXT NOT NULL            -- 'stored' | 'removed'
);
INSERT INTO "files" VALUES('bafyreibdyocywezrvr7qfz4bqretenz7qjr4aknlibfpdq5nryzald6drm','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX','plan.txt','text/plain',12,X'0101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101',1800000000,'stored');
CREATE TABLE inbox (
    reader TEXT NOT NULL,
    capsule TEXT NOT NULL,
    sender TEXT NOT NULL,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    sent INTEGER NOT NULL,         -- the entry's own time (the sender's clock)
    received_at INTEGER NOT NULL,
    state TEXT NOT NULL,           -- 'pending' | 'delivered' | 'withdrawn' | 'invalid'
    issuer TEXT,                   -- from the capsule, once fetched
    expires INTEGER,
    acked TEXT, attempts INTEGER NOT NULL DEFAULT 0, retry_at INTEGER,                    -- the last acknowledgement sent: NULL | 'delivered' | 'opened'
    PRIMARY KEY (reader, capsule)
);
INSERT INTO "inbox" VALUES('did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX','bafyreibs7iijzljdsrzpwx3t32jufglnbam7l53tbz7elk7usepwdvsf3e','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH','k51qzi5uqu5dj613kf6cyfjfmpfi5zyzr7b5agsjhhxupcavbdqmqhbh297c5u',0,'bafyreidexpxp43dx4ljaua2oqna4val3iu2ndenqbvkudhsqqggbmva55u',1800000040,1800000041,'pending',NULL,NULL,NULL,2,1800000500);
CREATE TABLE ipns_records (
    name TEXT PRIMARY KEY,         -- the IPNS name (k51...)
    kind TEXT NOT NULL,            -- the kind of feed it heads
    whose TEXT NOT NULL,           -- the did whose feed it is
    own INTEGER NOT NULL,          -- 1: this home signs it; 0: a record this home depends on
    seq INTEGER NOT NULL,
    eol INTEGER NOT NULL,          -- end of validity (Unix seconds)
    value TEXT NOT NULL,           -- /ipfs/<head CID>
    record BLOB NOT NULL,          -- the signed record, byte for byte
    kept_at INTEGER NOT NULL,      -- when it was published or accepted
    put_at INTEGER,                -- when it was last stored on the node
    outcome TEXT,                  -- the last republish: reput | resigned | skipped | failed
    error TEXT
);
INSERT INTO "ipns_records" VALUES('k51qzi5uqu5djmw2yvf8kk5cdjc1ddc00o4d5sjwi6f79xzcay9j3gkddw5uu4','identity','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX',1,1,1900000000,'/ipfs/bafyreiad6nq4qgrvsjmf3lp3r5o53lhknf7ijf7pcurqlfzuxdid3ecurm',X'0A017265636F7264',1800000100,1800000100,NULL,NULL);
CREATE TABLE mailbox_sent (
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    capsule TEXT NOT NULL,
    name TEXT NOT NULL,            -- the mailbox it went through
    seq INTEGER NOT NULL,          -- its entry
    entry TEXT NOT NULL,
    ack_ref BLOB NOT NULL,         -- how the recipient's acknowledgements name it
    sent_at INTEGER NOT NULL,
    delivered_at INTEGER,
    opened_at INTEGER,
    cancelled_at INTEGER,
    PRIMARY KEY (sender, recipient, capsule)
);
INSERT INTO "mailbox_sent" VALUES('did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH','bafyreigsgbqlbrx6ujfaog3onimsqvjqpzj6zlpocgppoccg3oez5vnv44','k51qzi5uqu5dlungh73g5u143sshrq0aiw4rbjxyntbll46so2v35c1po02cjv',0,'bafyreiaj7blhz2ihiskh3btkb4m7od2elt5gath2zmsmjaysmy2me26uy4',X'0202020202020202020202020202020202020202020202020202020202020202',1800000030,1800000050,1800000050,NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','4');
INSERT INTO "meta" VALUES('default_identity','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX');
CREATE TABLE opens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    capsule TEXT NOT NULL,
    opener TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    revocation_head TEXT,          -- the revocation head checked (NULL: none published)
    capability TEXT                -- the capability token's CID, if one was needed
);
INSERT INTO "opens" VALUES(1,'bafyreiaewlgfs3uchsq2x24ctawpjry7bhqfwvhtwvamrufsrz6u6zf3ky','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH',1800000010,NULL,NULL);
CREATE TABLE share_recipients (
    capsule TEXT NOT NULL,
    did TEXT NOT NULL,
    label TEXT NOT NULL,           -- how the sharer named the recipient
    PRIMARY KEY (capsule, did)
);
INSERT INTO "share_recipients" VALUES('bafyreiaewlgfs3uchsq2x24ctawpjry7bhqfwvhtwvamrufsrz6u6zf3ky','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH','bob');
INSERT INTO "share_recipients" VALUES('bafyreibs7iijzljdsrzpwx3t32jufglnbam7l53tbz7elk7usepwdvsf3e','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH','bob');
INSERT INTO "share_recipients" VALUES('bafyreigsgbqlbrx6ujfaog3onimsqvjqpzj6zlpocgppoccg3oez5vnv44','did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH','bob');
CREATE TABLE shares (
    capsule TEXT PRIMARY KEY,      -- the capsule's CID: its ID
    content TEXT NOT NULL,
    issuer TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER,
    download INTEGER NOT NULL,
    reshare INTEGER NOT NULL,
    policy TEXT,                   -- provider name, or NULL
    cap_issuer TEXT,               -- did that issues capabilities, or NULL
    state TEXT NOT NULL,           -- 'active' | 'revoked' | 'replaced'
    revoked_at INTEGER,
    revocation_head TEXT,          -- the head that records the revocation
    replaced_by TEXT               -- the capsule a rotation issued instead
);
INSERT INTO "shares" VALUES('bafyreiaewlgfs3uchsq2x24ctawpjry7bhqfwvhtwvamrufsrz6u6zf3ky','bafyreibdyocywezrvr7qfz4bqretenz7qjr4aknlibfpdq5nryzald6drm','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX',1800000000,1800086400,1,0,NULL,NULL,'revoked',1800000005,'bafyreibhfwuxuoq6g523ri2zh4ak5vfiifepo5bjzou6ins2mxdo6uiree',NULL);
INSERT INTO "shares" VALUES('bafyreibs7iijzljdsrzpwx3t32jufglnbam7l53tbz7elk7usepwdvsf3e','bafyreibdyocywezrvr7qfz4bqretenz7qjr4aknlibfpdq5nryzald6drm','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX',1800000001,1800086400,1,0,NULL,NULL,'active',NULL,NULL,NULL);
INSERT INTO "shares" VALUES('bafyreigsgbqlbrx6ujfaog3onimsqvjqpzj6zlpocgppoccg3oez5vnv44','bafyreibdyocywezrvr7qfz4bqretenz7qjr4aknlibfpdq5nryzald6drm','did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX',1800000002,1800086400,1,0,NULL,NULL,'active',NULL,NULL,NULL);
CREATE INDEX mailbox_sent_ack ON mailbox_sent (ack_ref);
CREATE INDEX mailbox_sent_capsule ON mailbox_sent (capsule);
CREATE INDEX inbox_state ON inbox (reader, state, acked);
CREATE INDEX feeds_own_owner ON feeds_own (kind, owner);
CREATE INDEX feeds_read_signer ON feeds_read (kind, signer);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('opens',1);
COMMIT;
PRAGMA user_version = 4;
