'use strict';
// The client kit against the real gateway and WeCom simulator: builds bin/caddy, runs a copy of
// Caddyfile.example on free ports (admin off, temporary storage) and drives the kit through a fake
// `wx` backed by real HTTP. Needs Go; set WECOMGATE_CADDY=/path/to/caddy to use a prebuilt binary.
// Run: node --test client/test/

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { createClient } = require('..');

const ROOT = path.resolve(__dirname, '..', '..');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Caddyfile.example with the ports swapped for free ones and the admin endpoint off. */
function caddyfile(ports) {
  let text = fs.readFileSync(path.join(ROOT, 'Caddyfile.example'), 'utf8');
  text = text.replace(/^\{[\s\S]*?^\}/m, '{\n\tadmin off\n}');
  for (const [from, to] of Object.entries(ports)) {
    const re = new RegExp(':' + from + '\\b', 'g');
    assert.match(text, re, 'Caddyfile.example no longer uses port ' + from);
    text = text.replace(re, ':' + to);
  }
  // A legacy backend's own 401, without the gateway's challenge: the kit must hand it back as is.
  const backend = new RegExp('(http://:' + ports[8082] + ' \\{\\n\\tbind 127\\.0\\.0\\.1\\n)');
  assert.match(text, backend, 'the backend block of Caddyfile.example changed');
  text = text.replace(backend, '$1\trespond /api/legacy401 `{"error":"unauthenticated","message":"legacy"}` 401\n');
  return text;
}

/** A fake wx: real HTTP for wx.request, the simulator's dev interface for wx.qy.login. */
function realWx(simURL, user) {
  const store = new Map();
  const wx = {
    user, // { corp, userid }: who is signed in to WeCom on this "device"
    codes: 0,
    uploads: 0,
    store,
    getSystemInfoSync: () => ({ environment: 'wxwork' }),
    getStorageSync: (k) => (store.has(k) ? store.get(k) : ''),
    setStorageSync: (k, v) => store.set(k, JSON.parse(JSON.stringify(v))),
    removeStorageSync: (k) => store.delete(k),
    uploadFile(o) {
      wx.uploads++;
      const form = new FormData();
      for (const [k, v] of Object.entries(o.formData || {})) form.append(k, v);
      form.append(o.name, new Blob([fs.readFileSync(o.filePath)]), path.basename(o.filePath));
      const listeners = [];
      fetch(o.url, { method: 'POST', headers: o.header, body: form })
        .then(async (r) => {
          listeners.forEach((cb) => cb({ header: Object.fromEntries(r.headers) }));
          o.success({ statusCode: r.status, data: await r.text(), errMsg: 'uploadFile:ok' }); // no header, as on the platform
        })
        .catch((e) => o.fail({ errMsg: 'uploadFile:fail ' + e.message }));
      return { abort() {}, onHeadersReceived: (cb) => listeners.push(cb) };
    },
    request(o) {
      const method = (o.method || 'GET').toUpperCase();
      const body = method === 'GET' || o.data === undefined ? undefined
        : typeof o.data === 'string' ? o.data : JSON.stringify(o.data);
      fetch(o.url, { method, headers: o.header, body, signal: AbortSignal.timeout(o.timeout || 10000) })
        .then(async (r) => {
          const text = await r.text();
          let data = text;
          try { data = JSON.parse(text); } catch (e) { /* not JSON: keep the text, as wx.request does */ }
          o.success({ statusCode: r.status, data, header: Object.fromEntries(r.headers) });
        })
        .catch((e) => o.fail({ errMsg: 'request:fail ' + e.message }));
    },
    qy: {
      login(o) {
        wx.codes++;
        fetch(simURL + '/sim/code', {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(wx.user),
        })
          .then((r) => r.json())
          .then((b) => (b.code ? o.success({ code: b.code, errMsg: 'qy.login:ok' }) : o.fail({ errMsg: 'qy.login:fail ' + b.message })))
          .catch((e) => o.fail({ errMsg: 'qy.login:fail ' + e.message }));
      },
    },
  };
  return wx;
}

async function waitFor(url, proc, log) {
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error('caddy exited (' + (proc.exitCode === null ? proc.signalCode : proc.exitCode) + '):\n' + log());
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error('caddy did not answer at ' + url + ':\n' + log());
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test('client kit against the real gateway and simulator', { timeout: 120000 }, async (t) => {
  let bin = process.env.WECOMGATE_CADDY && path.resolve(process.env.WECOMGATE_CADDY);
  if (!bin) {
    if (spawnSync('go', ['version']).error) {
      t.skip('go is not on PATH: cannot build the Caddy binary (or set WECOMGATE_CADDY)');
      return;
    }
    bin = path.join(ROOT, 'bin', 'caddy');
    const build = spawnSync('go', ['build', '-o', bin, './caddy'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(build.status, 0, 'go build -o bin/caddy ./caddy failed:\n' + build.stderr);
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wecomgate-client-'));
  const [gw, sim, backend] = [await freePort(), await freePort(), await freePort()];
  const config = path.join(tmp, 'Caddyfile');
  fs.writeFileSync(config, caddyfile({ 8080: gw, 8081: sim, 8082: backend }));
  let output = '';
  const caddy = spawn(bin, ['run', '--config', config, '--adapter', 'caddyfile'], {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: Object.assign({}, process.env, {
      XDG_CONFIG_HOME: path.join(tmp, 'config'), XDG_DATA_HOME: path.join(tmp, 'data'), HOME: tmp,
    }),
  });
  caddy.stdout.on('data', (d) => { output += d; });
  caddy.stderr.on('data', (d) => { output += d; });
  t.after(() => {
    // Never kill() a child that did not start: Node would signal pid 0, our own process group.
    if (caddy.pid !== undefined && caddy.exitCode === null && caddy.signalCode === null) caddy.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  await new Promise((resolve, reject) => {
    caddy.once('spawn', resolve);
    caddy.once('error', (e) => reject(new Error('cannot start ' + bin + ': ' + e.message)));
  });

  const gwURL = 'http://127.0.0.1:' + gw;
  const simURL = 'http://127.0.0.1:' + sim;
  await waitFor(gwURL + '/wecom/session', caddy, () => output);
  await waitFor(simURL + '/sim/state', caddy, () => output);
  const client = (user, opts) => {
    const wx = realWx(simURL, user);
    return { wx, api: createClient(Object.assign({ baseURL: gwURL, wx }, opts)) };
  };

  await t.test('login, then the backend sees the identity and not the token', async () => {
    const { wx, api } = client({ corp: 'acme', userid: 'zhangsan' });
    const s = await api.login();
    assert.equal(s.userid, 'zhangsan');
    assert.equal(s.corp, 'acme');
    assert.equal(s.corpid, 'ww00000000000acme');
    const res = await api.request({ url: '/api/orders?page=2' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.data['x-wecom-userid'], 'zhangsan');
    assert.equal(res.data['x-wecom-corp'], 'acme');
    assert.equal(decodeURIComponent(res.data['x-wecom-name']), '张三');
    assert.equal(res.data.uri, '/api/orders?page=2');
    assert.equal(res.data.authorization, '', 'the gateway passed its token on to the backend');
    assert.equal(wx.codes, 1);
  });

  await t.test('a rejected token: one new login and the request succeeds', async () => {
    const { wx, api } = client({ corp: 'acme', userid: 'zhangsan' });
    await api.login();
    const s = wx.store.get('wecomgate');
    wx.store.set('wecomgate', Object.assign({}, s, { token: s.token.slice(0, -4) + 'AAAA' }));
    const results = await Promise.all([api.request('/api/a'), api.request('/api/b')]);
    assert.deepEqual(results.map((r) => r.data['x-wecom-userid']), ['zhangsan', 'zhangsan']);
    assert.equal(wx.codes, 2);
  });

  await t.test('a partner user goes through wrong_corp and the corp is remembered', async () => {
    const { wx, api } = client({ corp: 'partner', userid: 'zhaoliu' });
    const res = await api.request('/api/me');
    assert.equal(res.data['x-wecom-userid'], 'zhaoliu');
    assert.equal(res.data['x-wecom-corp'], 'partner');
    assert.equal(wx.codes, 2, 'expected one wrong_corp answer, then a fresh code');
    assert.equal(wx.store.get('wecomgate').corp, 'partner');
    // The next login (here after the token has gone) names partner at once: one code.
    wx.store.set('wecomgate', { corp: 'partner' });
    const again = await api.request('/api/me');
    assert.equal(again.data['x-wecom-corp'], 'partner');
    assert.equal(wx.codes, 3);
  });

  await t.test('logout ends the session at the gateway', async () => {
    const { wx, api } = client({ corp: 'acme', userid: 'zhangsan' });
    await api.login();
    const token = api.session().token;
    await api.logout();
    assert.equal(wx.store.has('wecomgate'), false);
    const r = await fetch(gwURL + '/api/x', { headers: { Authorization: 'Bearer ' + token } });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error, 'unauthenticated');
  });

  await t.test('a disabled user gets user_inactive', async () => {
    const { wx, api } = client({ corp: 'acme', userid: 'lisi' });
    await assert.rejects(api.request('/api/me'), (e) => {
      assert.equal(e.code, 'user_inactive');
      assert.equal(e.status, 403);
      return true;
    });
    assert.equal(api.session(), null);
    assert.equal(wx.codes, 1);
  });

  await t.test("a backend's own 401 is handed back; the gateway's 401 signs in again", async () => {
    const { wx, api } = client({ corp: 'acme', userid: 'zhangsan' });
    await api.login();
    await assert.rejects(api.request({ url: '/api/legacy401', method: 'POST', data: { n: 1 } }),
      (e) => e.code === 'unauthenticated' && e.status === 401 && e.detail === 'legacy');
    assert.equal(wx.codes, 1, "the backend's 401 caused a login");
    assert.ok(api.session());
    const s = wx.store.get('wecomgate');
    wx.store.set('wecomgate', Object.assign({}, s, { token: s.token.slice(0, -4) + 'AAAA' }));
    const res = await api.request({ url: '/api/orders', method: 'POST', data: { n: 1 } });
    assert.equal(res.data['x-wecom-userid'], 'zhangsan');
    assert.equal(wx.codes, 2);
  });

  await t.test('an upload carries the token and survives a rejected token', async () => {
    const { wx, api } = client({ corp: 'acme', userid: 'zhangsan' });
    const file = path.join(tmp, 'photo.jpg');
    fs.writeFileSync(file, 'not really a jpeg');
    const res = await api.uploadFile({ url: 'api/upload', filePath: file, name: 'file', formData: { k: 'v' } });
    assert.equal(res.statusCode, 200);
    const body = JSON.parse(res.data);
    assert.equal(body.method, 'POST');
    assert.equal(body.uri, '/api/upload');
    assert.equal(body['x-wecom-userid'], 'zhangsan');
    assert.equal(body.authorization, '');
    // A rejected token: the gateway refused before the backend saw it, so one resend is safe.
    const s = wx.store.get('wecomgate');
    wx.store.set('wecomgate', Object.assign({}, s, { token: s.token.slice(0, -4) + 'AAAA' }));
    const again = await api.uploadFile({ url: '/api/upload', filePath: file, name: 'file' });
    assert.equal(JSON.parse(again.data)['x-wecom-userid'], 'zhangsan');
    assert.equal(wx.codes, 2);
    assert.equal(wx.uploads, 3);
  });

  await t.test('review login reaches only the public part', async () => {
    const { api } = client({ corp: 'acme', userid: 'zhangsan' });
    const s = await api.reviewLogin('reviewer', 'review-demo');
    assert.equal(s.review, true);
    const res = await api.request('/api/public/info');
    assert.equal(res.data['x-wecom-userid'], 'review:reviewer');
    assert.equal(res.data['x-wecom-review'], '1');
    await assert.rejects(api.request('/api/private'), { code: 'review_forbidden', status: 403 });
  });
});
