/** The peers measured beside gitlab-iap: nginx (plain pass-through) and Apache + mod_auth_openidc (the same job). */
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startProcess, type Proc } from './processes.ts'

export interface Served extends Proc {
  readonly url: string
}

async function waitForHttp(url: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const ok = await fetch(url).then((r) => (r.body?.cancel(), true), () => false)
    if (ok) return
    if (Date.now() > end) throw new Error(`${url} did not answer`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export const haveNginx = () => existsSync('/usr/sbin/nginx')
export const haveApacheOidc = () => existsSync('/usr/sbin/apache2') && existsSync('/usr/lib/apache2/modules/mod_auth_openidc.so')

/** nginx with one worker (gitlab-iap is one process too), keep-alive to the upstream, no buffering. */
export async function startNginx(upstreamPort: number): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'))
  const port = await freePort()
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream gitlab { server 127.0.0.1:${upstreamPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    location / {
      proxy_pass http://gitlab;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`,
  )
  const proc = await startProcess('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], () => 'started' as const, { timeoutMs: 5000 })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/`)
  return { ...proc, url }
}

/**
 * Apache (event MPM) + mod_auth_openidc as an OAuth 2.0 resource server: every request under
 * /bench/ must carry a bearer JWT verified with the issuer's signing key, with `groups` containing `groupId`.
 */
export async function startApacheOidc(upstreamPort: number, key: { pem: string; kid: string }, groupId: string): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-apache-'))
  // mod_auth_openidc fetches JWKS only over https; the same public key as a file is the equivalent setup.
  writeFileSync(join(dir, 'signing-key.pem'), key.pem)
  const port = await freePort()
  const mod = (name: string, file: string) => `LoadModule ${name}_module /usr/lib/apache2/modules/${file}`
  writeFileSync(
    join(dir, 'httpd.conf'),
    `ServerRoot ${dir}
ServerName 127.0.0.1
PidFile ${dir}/httpd.pid
Listen 127.0.0.1:${port}
${mod('mpm_event', 'mod_mpm_event.so')}
${mod('authz_core', 'mod_authz_core.so')}
${mod('authn_core', 'mod_authn_core.so')}
${mod('auth_openidc', 'mod_auth_openidc.so')}
${mod('proxy', 'mod_proxy.so')}
${mod('proxy_http', 'mod_proxy_http.so')}
User www-data
Group www-data
ErrorLog ${dir}/error.log
LogLevel warn
StartServers 1
ServerLimit 1
ThreadsPerChild 128
MaxRequestWorkers 128
KeepAlive On
MaxKeepAliveRequests 0
OIDCCryptoPassphrase ${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}
OIDCOAuthVerifyCertFiles ${key.kid}#${join(dir, 'signing-key.pem')}
OIDCOAuthRemoteUserClaim sub
ProxyPass /bench/ http://127.0.0.1:${upstreamPort}/bench/ keepalive=On
<Location /bench/>
  AuthType oauth20
  Require claim groups:${groupId}
</Location>
`,
  )
  const proc = await startProcess('/usr/sbin/apache2', ['-f', join(dir, 'httpd.conf'), '-DFOREGROUND'], () => 'started' as const, { timeoutMs: 5000 })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/`)
  return { ...proc, url }
}
