# The connector's image. Build from a checkout: docker build -t aci-connector:0.1.0 .
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Only the connector is compiled here (tsconfig.build.json: src/ without src/emulator); the emulator,
# the tests, the dev cluster and the bench are development tools and stay out of the image.
RUN npx tsc -p tsconfig.build.json

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: test/unit/production-build.test.ts keeps them equal to what the connector loads.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
USER node
EXPOSE 10250 10255
ENTRYPOINT ["node", "dist/src/cli/main.js"]
