# glassgate gateway image: Bun, production dependencies from the lockfile, a non-root user that
# holds only CAP_NET_ADMIN (for the TUN device and its addresses), data in a volume.
FROM oven/bun:1-debian AS deps
WORKDIR /app
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile --production

FROM oven/bun:1-debian
# iproute2: addresses and routes on the TUN; libsodium23: the fast AEAD backend;
# libcap2-bin: setcap, so the unprivileged user gets CAP_NET_ADMIN through file capabilities.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 libsodium23 libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && setcap cap_net_admin+ep "$(readlink -f "$(command -v bun)")" \
 && setcap cap_net_admin+ep "$(readlink -f "$(command -v ip)")" \
 && groupadd --system --gid 10001 glassgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin glassgate \
 && install -d -o glassgate -g glassgate -m 0700 /data \
 && install -d -o glassgate -g glassgate -m 0750 /run/glassgate
# /run/glassgate holds the admin token file (GLASSGATE_ADMIN_TOKEN_FILE). It must exist here, owned
# by the gateway's user: a new named volume takes the owner and mode of the image's directory, and
# without one it would be root's and the token unwritable. 0750 and a 0640 token, not 0700/0600:
# Prometheus (another uid) mounts the volume read-only as a member of group 10001 (compose's
# group_add); others get nothing.
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bun.lock tsconfig.json ./
COPY src ./src
COPY admin ./admin
COPY migrations ./migrations
COPY deploy/gateway/entrypoint.sh /usr/local/bin/glassgate-entrypoint
USER glassgate
VOLUME ["/data"]
# Config: a wg-quick file at GLASSGATE_CONFIG (created with a new key on first start when
# missing), or mount your own there; everything else by environment (see README), secrets by file
# (deploy/gateway/entrypoint.sh).
# The admin UI listens on the container's loopback only, so a plain `docker run -p 8080:8080`
# exposes nothing. To reach it from outside the container set GLASSGATE_ADMIN=0.0.0.0:8080 and
# publish it on the host's loopback only, as docker-compose.yml does.
ENV GLASSGATE_DATA_DIR=/data \
    GLASSGATE_CONFIG=/data/glassgate.conf \
    GLASSGATE_ADMIN=127.0.0.1:8080 \
    GLASSGATE_INTERFACE=glassgate0
EXPOSE 52625/udp 8080/tcp
# Asks the admin server on loopback, at whatever port GLASSGATE_ADMIN names (it answers on
# 127.0.0.1 both when bound there and when bound to 0.0.0.0).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bun", "-e", "const a = process.env.GLASSGATE_ADMIN ?? ''; fetch('http://127.0.0.1:' + (a.slice(a.lastIndexOf(':') + 1) || '8080') + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["glassgate-entrypoint"]
