# syntax=docker/dockerfile:1
# gitlab-iap: the image runs the JavaScript compiled from src/ (the `build` stage, `npm run build`'s
# tsc); a checkout runs the TypeScript sources directly, the image does not ship them.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; no install scripts are needed at runtime.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# TypeScript and the type packages. No install scripts: the `node` devDependency's would download a
# second Node, which this stage does not need.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# tsc called directly, as `npm run build` does: npm would put that (absent) devDependency node first on PATH.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
# Node sizes V8's young generation from the container's memory limit; under 512Mi it is small enough
# to double the CPU spent per request on garbage collection (docs/deploy.md).
ENV NODE_OPTIONS=--max-semi-space-size=32
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json ./
COPY --chown=root:root --chmod=0755 bin ./bin
COPY --from=build --chown=root:root /app/dist ./dist
# `gitlab-iap` on PATH (`kubectl exec … -- gitlab-iap check --config …`), like the npm package's bin:
# bin/gitlab-iap.js has a node shebang (mode 0755 above), and Node follows the link to find dist/.
RUN ln -s /app/bin/gitlab-iap.js /usr/local/bin/gitlab-iap
# The image's unprivileged "node" user (uid 1000); the app writes nothing but the paths you mount
# (an access-log file, if you choose one), so the root filesystem can be read-only.
USER 1000:1000
EXPOSE 8080 9090
# Node is PID 1 and handles SIGTERM itself: stop accepting, drain in-flight requests, exit 0.
ENTRYPOINT ["node", "bin/gitlab-iap.js"]
CMD ["serve", "--config", "/etc/gitlab-iap/config.yaml"]
