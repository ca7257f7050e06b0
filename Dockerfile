# The connector's image.
#   docker build -t aci-connector:0.1.0 .          (or podman build; the default bases are Docker Hub's node:20)
# Where no registry is reachable, the bases are build arguments: devcluster/image/build.sh builds
# local ones from Debian 13 packages (devcluster/image/base.sh) and passes them here.
#   BASE        what the image runs on: Node.js >= 20.19
#   BUILD_BASE  what it is built on: Node.js and npm (BASE itself when that has npm)
ARG BASE=docker.io/library/node:20-bookworm-slim
ARG BUILD_BASE=docker.io/library/node:20-bookworm-slim

FROM ${BUILD_BASE} AS build
# A CA bundle for npm behind a TLS-inspecting proxy (devcluster/image/build.sh passes the host's);
# an ARG of this stage only, so the shipped image never carries it.
ARG NPM_CONFIG_CAFILE
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Only the connector is compiled here (tsconfig.build.json: src/ without src/emulator); the emulator,
# the tests, the dev cluster and the bench are development tools and stay out of the image.
RUN npx tsc -p tsconfig.build.json
# Production dependencies only, into a folder of their own for the final stage:
# test/unit/production-build.test.ts keeps them equal to what the connector loads.
WORKDIR /prod
RUN cp /app/package.json /app/package-lock.json . && npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM ${BASE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /prod/package.json ./package.json
COPY --from=build /prod/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# Not root, and numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd entry
# (65532 is the usual "nonroot" id; the base needs no user of its own).
USER 65532:65532
EXPOSE 10250 10255
ENTRYPOINT ["node", "dist/src/cli/main.js"]
