# The ipfs-share agent (`ipfs-share serve`) as a container, for docker/compose.yml.
#
#   docker compose -f docker/compose.yml --profile agent up -d --build
#
# It runs as an unprivileged user with its home in a volume (/data/ipfs-share: keys, the
# state database, agent.sock) and talks to the kubo service over the compose network.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 ipfs-share \
    && mkdir -p /data/ipfs-share && chown ipfs-share:ipfs-share /data/ipfs-share \
    && chmod 0700 /data/ipfs-share

COPY pyproject.toml README.md /src/
COPY ipfs_share /src/ipfs_share
RUN pip install --no-cache-dir /src && rm -rf /src

USER ipfs-share
ENV IPFS_SHARE_HOME=/data/ipfs-share
VOLUME ["/data/ipfs-share"]
ENTRYPOINT ["ipfs-share"]
CMD ["serve"]
