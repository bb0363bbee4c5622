'use strict';
// Unit tests of client/wecomgate.js against a fake `wx` and a fake gateway.
// Run: node --test client/test/

const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('..');

const BASE = 'https://gw.example.com';

/**
 * A fake gateway speaking SPEC §4–§6: codes are "code-<n>" minted by the fake
 * wx.qy.login for the device's user; each user belongs to a corp.
 */
function fakeGateway(opts) {
  const o = Object.assign({ corps: ['acme', 'partner'], users: { zhangsan: 'acme' } }, opts);
  const gw = {
    tokens: new Map(), // token -> user
    codes: new Map(), // code -> userid
    spent: new Set(),
    logins: [], // bodies of POST /wecom/login
    decrypts: [], // POST /wecom/decrypt as received
    seq: 0,
    handle(req) {
      const path = req.url.slice(BASE.length);
      const json = (statusCode, data, header) => ({ statusCode, data, header: Object.assign({ 'Content-Type': 'application/json' }, header) });
      const err = (status, code, extra) => json(status, Object.assign({ error: code, message: code + ' (fake)' }, extra),
        status === 401 ? { 'WWW-Authenticate': 'Bearer realm="wecom"' } : {});
      if (path === '/wecom/login') {
        gw.logins.push(req.data);
        const { code, corp } = req.data;
        if (!code) return err(400, 'invalid_request');
        if (corp && !o.corps.includes(corp)) return err(400, 'invalid_request');
        if (gw.spent.has(code) || !gw.codes.has(code)) return err(401, 'invalid_code');
        gw.spent.add(code);
        const userid = gw.codes.get(code);
        const userCorp = o.users[userid];
        if (o.inactive && o.inactive.includes(userid)) return err(403, 'user_inactive');
        if (userCorp !== (corp || o.corps[0])) return err(409, 'wrong_corp', { corp: userCorp });
        const token = 'tok-' + ++gw.seq;
        gw.tokens.set(token, { userid, corp: userCorp, sessionKey: code }); // the code stands for its session_key
        return json(200, { token, token_type: 'Bearer', expires_in: 86400, userid, corpid: 'ww' + userCorp, corp: userCorp, name: userid.toUpperCase() });
      }
      if (path === '/wecom/review/login') {
        if (req.data.username !== 'reviewer' || req.data.password !== 'review-demo') return err(401, 'unauthenticated');
        const token = 'rev-' + ++gw.seq;
        gw.tokens.set(token, { userid: 'review:reviewer', review: true });
        return json(200, { token, token_type: 'Bearer', expires_in: 86400, userid: 'review:reviewer', name: 'reviewer', review: true });
      }
      const authNames = Object.keys(req.header || {}).filter((k) => k.toLowerCase() === 'authorization');
      if (authNames.length > 1) return err(400, 'invalid_request', { message: 'two Authorization headers' });
      const auth = (authNames.length && req.header[authNames[0]]) || '';
      const user = gw.tokens.get(auth.replace(/^Bearer /, ''));
      if (path === '/wecom/logout') {
        gw.tokens.delete(auth.replace(/^Bearer /, ''));
        return { statusCode: 204, data: '', header: {} };
      }
      if (path === '/wecom/decrypt' && o.decrypt === false) return err(404, 'not_found');
      if (!user) return err(401, 'unauthenticated');
      if (path === '/wecom/decrypt') {
        // WeCom's encryptedData is made with the session_key of the latest wx.qy.login: the fake's
        // is "enc:<api>:<that login's code>", decryptable only with a token from that very login.
        gw.decrypts.push({ data: req.data, header: req.header, method: req.method });
        if (user.review) return err(403, 'review_forbidden');
        const d = req.data || {};
        const m = /^enc:(\w+):(.+)$/.exec(d.encrypted_data || '');
        if (Object.keys(d).sort().join() !== 'encrypted_data,iv' || !m || m[2] !== user.sessionKey || d.iv !== 'iv:' + m[2]) {
          return err(400, 'invalid_request');
        }
        if (m[1] === 'getMobile') return json(200, { mobile: '13800000000' });
        if (m[1] === 'getEmail') return json(200, { email: user.userid + '@example.com' });
        return json(200, { corpid: 'ww' + user.corp, userid: user.userid, name: user.userid.toUpperCase(), gender: 1 });
      }
      if (path === '/api/missing') return json(404, { error: 'not_found', message: 'no such order' });
      if (path === '/api/plain401') return { statusCode: 401, data: 'backend says no', header: {} };
      if (path === '/api/legacy401') return json(401, { error: 'unauthenticated', message: 'legacy backend' }); // no challenge
      if (path === '/api/busy') return json(503, { error: 'wecom_unavailable', message: 'busy' }, { 'Retry-After': '7' });
      if (path.startsWith('/files/')) return { statusCode: 200, data: 'file-bytes:' + user.userid, header: {} };
      return json(200, { path, userid: user.userid, corp: user.corp, method: req.method || 'GET' });
    },
  };
  return gw;
}

/**
 * A fake wx that behaves like the platform's: wx.request resolves every HTTP status in `success`
 * (fail only without a response), at most 10 tasks run at once (the rest wait), tasks have abort()
 * and onHeadersReceived(), uploadFile/downloadFile answer without `header` in `success`, and header
 * names come as the platform gives them (lower case with `lowerHeaders`, as over HTTP/2).
 */
function fakeWx(opts) {
  const o = Object.assign({ environment: 'wxwork', userid: 'zhangsan' }, opts);
  const store = new Map();
  let running = 0;
  const queue = [];
  const lower = (h) => {
    if (!o.lowerHeaders || !h) return h;
    const out = {};
    for (const k of Object.keys(h)) out[k.toLowerCase()] = h[k];
    return out;
  };
  // One platform task: `answer(req)` gives the gateway's response; `finish(res)` shapes success.
  const task = (req, finish) => {
    let aborted = false;
    let started = false;
    const headerListeners = [];
    const run = () => {
      started = true;
      running++;
      wx.peak = Math.max(wx.peak, running);
      wx.requests.push(req);
      setTimeout(() => {
        running--;
        if (queue.length) queue.shift()();
        if (aborted) return req.fail({ errMsg: 'request:fail abort' });
        if (o.network === 'down') return req.fail({ errMsg: 'request:fail timeout' });
        const res = o.gateway.handle(req);
        res.header = lower(res.header);
        headerListeners.forEach((cb) => cb({ header: res.header }));
        req.success(finish(res));
      }, o.delay ? o.delay(req) : 2);
    };
    if (running < 10) run(); else queue.push(run);
    return {
      abort() { aborted = true; if (!started) { queue.splice(queue.indexOf(run), 1); req.fail({ errMsg: 'request:fail abort' }); } },
      onHeadersReceived(cb) { headerListeners.push(cb); },
      onProgressUpdate(cb) { setTimeout(() => cb({ progress: 100, totalBytesSent: 1, totalBytesExpectedToSend: 1 }), 1); },
    };
  };
  const wx = {
    userid: o.userid,
    requests: [],
    qyLogins: 0,
    qyLoginOptions: [],
    peak: 0,
    files: new Map(), // temp file path -> content, for downloadFile
    store,
    getSystemInfoSync() {
      return o.environment ? { environment: o.environment } : { platform: 'ios' };
    },
    getSystemInfo({ success }) { setTimeout(() => success(wx.getSystemInfoSync()), 1); },
    getStorageSync: (k) => { if (o.storage === 'broken') throw new Error('getStorageSync:fail'); return store.has(k) ? store.get(k) : ''; },
    setStorageSync: (k, v) => {
      if (o.storage === 'broken' || o.storage === 'full') throw new Error('setStorageSync:fail exceed storage max size 10MB');
      store.set(k, JSON.parse(JSON.stringify(v)));
    },
    removeStorageSync: (k) => { store.delete(k); },
    request: (req) => task(req, (res) => res),
    uploadFile: (req) => task(Object.assign({ method: 'POST', data: { file: req.filePath, name: req.name, formData: req.formData } }, req),
      (res) => ({ statusCode: res.statusCode, data: typeof res.data === 'string' ? res.data : JSON.stringify(res.data), errMsg: 'uploadFile:ok' })),
    downloadFile: (req) => task(req, (res) => {
      const p = 'wxfile://tmp_' + wx.files.size;
      wx.files.set(p, typeof res.data === 'string' ? res.data : JSON.stringify(res.data));
      return { statusCode: res.statusCode, tempFilePath: p, errMsg: 'downloadFile:ok' };
    }),
    getFileSystemManager: () => ({ readFileSync: (p) => { if (!wx.files.has(p)) throw new Error('no such file'); return wx.files.get(p); } }),
  };
  if (o.environment === 'wxwork' || o.qy) {
    // getMobile, getEmail, getEnterpriseUserInfo: encrypted with the latest login's key, or refused.
    const sensitive = (api) => (so) => {
      wx.qyCalls.push(api);
      setTimeout(() => (o.consent === false
        ? so.fail({ errMsg: 'qy.' + api + ':fail auth deny' })
        : so.success({ encryptedData: 'enc:' + api + ':' + wx.sessionKey, iv: 'iv:' + wx.sessionKey, errMsg: 'qy.' + api + ':ok' })), 1);
    };
    wx.qyCalls = [];
    wx.qy = {
      getMobile: sensitive('getMobile'),
      getEmail: sensitive('getEmail'),
      getEnterpriseUserInfo: sensitive('getEnterpriseUserInfo'),
      login(lo) {
        wx.qyLogins++;
        wx.qyLoginOptions.push(lo);
        if (o.qyStuck && o.qyStuck(wx.qyLogins)) return; // never calls back (the platform's timeout is not trusted either)
        const code = 'code-' + wx.qyLogins + '-' + wx.userid;
        o.gateway.codes.set(code, wx.userid);
        wx.sessionKey = code; // WeCom's session_key changes with every login
        setTimeout(() => lo.success({ code, errMsg: 'qy.login:ok' }), 1);
      },
    };
  }
  return wx;
}

function setup(gwOpts, wxOpts, clientOpts) {
  const gateway = fakeGateway(gwOpts);
  const wx = fakeWx(Object.assign({ gateway }, wxOpts));
  const client = createClient(Object.assign({ baseURL: BASE + '/', wx }, clientOpts));
  return { gateway, wx, client };
}

const paths = (wx) => wx.requests.map((r) => r.url.slice(BASE.length));

test('environment detection: environment, else wx.qy; asked on every call', async () => {
  assert.equal(setup().client.isWeCom(), true);
  assert.equal(setup({}, { environment: undefined }).client.isWeCom(), false); // ordinary WeChat
  assert.equal(await setup().client.detectWeCom(), true);
  assert.equal(await setup({}, { environment: undefined }).client.detectWeCom(), false);
  // environment missing but wx.qy there: WeCom, and the first request carries a token.
  const { client, wx } = setup({}, { environment: undefined, qy: true });
  assert.equal(client.isWeCom(), true);
  await client.request('/api/orders');
  assert.match(wx.requests[1].header.Authorization, /^Bearer tok-/);
  // Not fixed at the first call: a client created before WeCom answered sees the change.
  const w2 = setup({}, { environment: undefined }).wx;
  const c = createClient({ baseURL: BASE, wx: w2 });
  assert.equal(c.isWeCom(), false);
  w2.getSystemInfoSync = () => ({ environment: 'wxwork' });
  assert.equal(c.isWeCom(), true);
  w2.getSystemInfoSync = () => { throw new Error('no'); };
  assert.equal(c.isWeCom(), false);
  assert.throws(() => createClient({ wx }), /baseURL/);
});

test('login posts the code and stores the token with its expiry', async () => {
  const { client, wx, gateway } = setup();
  const before = Date.now();
  const s = await client.login();
  assert.equal(s.userid, 'zhangsan');
  assert.equal(s.corp, 'acme');
  assert.equal(s.review, false);
  assert.deepEqual(gateway.logins, [{ code: 'code-1-zhangsan' }]); // no corp configured: none named
  const stored = wx.store.get('wecomgate');
  assert.match(stored.token, /^tok-/);
  assert.ok(stored.expiresAt >= before + 86400 * 1000 && stored.expiresAt <= Date.now() + 86400 * 1000);
  assert.equal(client.session().token, stored.token);
  assert.equal(wx.requests[0].method, 'POST');
  assert.equal(wx.requests[0].url, BASE + '/wecom/login');
});

test('configured corp, endpoints and storage key are used', async () => {
  const { client, wx, gateway } = setup({}, {}, { corp: 'acme', endpoints: 'auth/', storageKey: 'k' });
  gateway.handle = ((h) => (req) => h(Object.assign({}, req, { url: req.url.replace('/auth/', '/wecom/') })))(gateway.handle);
  await client.login();
  assert.deepEqual(gateway.logins, [{ code: 'code-1-zhangsan', corp: 'acme' }]);
  assert.equal(paths(wx)[0], '/auth/login');
  assert.ok(wx.store.get('k').token);
});

test('request signs in first and adds the Bearer token', async () => {
  const { client, wx } = setup();
  const res = await client.request({ url: '/api/orders', header: { 'X-Trace': '1' }, timeout: 5000 });
  assert.equal(res.statusCode, 200);
  assert.equal(res.data.userid, 'zhangsan');
  assert.deepEqual(paths(wx), ['/wecom/login', '/api/orders']);
  const api = wx.requests[1];
  assert.equal(api.header.Authorization, 'Bearer ' + client.session().token);
  assert.equal(api.header['X-Trace'], '1');
  assert.equal(api.timeout, 5000);
  await client.request('/api/again'); // stored token reused, no new login
  assert.equal(wx.qyLogins, 1);
  // An expired token is not sent: a new login comes first.
  wx.store.set('wecomgate', Object.assign(wx.store.get('wecomgate'), { expiresAt: Date.now() - 1 }));
  await client.request('/api/later');
  assert.equal(wx.qyLogins, 2);
});

test('401 signs in again once and retries once', async () => {
  const { client, wx, gateway } = setup();
  await client.login();
  gateway.tokens.clear(); // session revoked at the gateway
  const res = await client.request({ url: '/api/orders' });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(paths(wx), ['/wecom/login', '/api/orders', '/wecom/login', '/api/orders']);
  assert.equal(wx.qyLogins, 2);
});

test('401 on the retry is an error, not a loop', async () => {
  const { client, wx, gateway } = setup();
  await client.login();
  const handle = gateway.handle;
  gateway.handle = (req) => (req.url.endsWith('/api/orders')
    ? { statusCode: 401, data: { error: 'unauthenticated', message: 'no' }, header: { 'www-authenticate': 'Bearer realm="wecom"' } } : handle(req));
  await assert.rejects(client.request('/api/orders'), (e) => e.code === 'unauthenticated' && e.status === 401);
  assert.deepEqual(paths(wx), ['/wecom/login', '/api/orders', '/wecom/login', '/api/orders']);
  assert.equal(client.session(), null); // the refused token is dropped
});

test("the backend's own 401 does not trigger a login", async () => {
  const { client, wx } = setup();
  await assert.rejects(client.request('/api/plain401'), (e) => e.code === 'http_401' && e.status === 401);
  assert.equal(wx.qyLogins, 1);
  assert.ok(client.session());
});

test('concurrent 401s share one login', async () => {
  const { client, wx, gateway } = setup();
  await client.login();
  gateway.tokens.clear();
  const results = await Promise.all([1, 2, 3, 4, 5].map((i) => client.request('/api/item/' + i)));
  assert.deepEqual(results.map((r) => r.statusCode), [200, 200, 200, 200, 200]);
  assert.equal(wx.qyLogins, 2);
  assert.equal(gateway.logins.length, 2);
  const retried = wx.requests.filter((r) => r.url.includes('/api/')).slice(5);
  assert.equal(new Set(retried.map((r) => r.header.Authorization)).size, 1);
});

test('a 401 arriving after the new login uses the new token', async () => {
  const slow = (req) => (req.url.endsWith('/api/slow') && /tok-1$/.test(req.header.Authorization) ? 60 : 2);
  const { client, wx, gateway } = setup({}, { delay: slow });
  await client.login();
  gateway.tokens.clear();
  const [fast, late] = await Promise.all([client.request('/api/fast'), client.request('/api/slow')]);
  assert.equal(fast.statusCode, 200);
  assert.equal(late.statusCode, 200);
  assert.equal(wx.qyLogins, 2); // the late 401 found tok-2 in place and did not sign in again
  assert.equal(wx.requests[wx.requests.length - 1].header.Authorization, 'Bearer tok-2');
});

test('concurrent first requests share one login', async () => {
  const { client, wx } = setup();
  await Promise.all([client.request('/api/a'), client.request('/api/b'), client.login()]);
  assert.equal(wx.qyLogins, 1);
});

test('wrong_corp: fresh code, retry with the named corp, remembered', async () => {
  const { client, wx, gateway } = setup({ users: { zhaoliu: 'partner' } }, { userid: 'zhaoliu' });
  const s = await client.login();
  assert.equal(s.corp, 'partner');
  assert.deepEqual(gateway.logins, [{ code: 'code-1-zhaoliu' }, { code: 'code-2-zhaoliu', corp: 'partner' }]);
  assert.equal(wx.store.get('wecomgate').corp, 'partner');
  // The next login names the remembered corp at once, also in a new client.
  gateway.tokens.clear();
  const again = createClient({ baseURL: BASE, wx });
  await again.request('/api/x');
  assert.deepEqual(gateway.logins[2], { code: 'code-3-zhaoliu', corp: 'partner' });
  assert.equal(gateway.logins.length, 3);
});

test('wrong_corp overrides the configured corp too', async () => {
  const { client, gateway } = setup({ users: { zhangsan: 'acme' } }, {}, { corp: 'partner' });
  await client.login();
  assert.deepEqual(gateway.logins.map((b) => b.corp), ['partner', 'acme']);
});

test('a remembered corp the gateway no longer knows is forgotten', async () => {
  const { client, wx, gateway } = setup();
  wx.store.set('wecomgate', { corp: 'gone' });
  await client.login();
  assert.deepEqual(gateway.logins.map((b) => b.corp), ['gone', undefined]);
  assert.equal(wx.store.get('wecomgate').corp, undefined);
});

test('login errors carry code and status; nothing is stored', async () => {
  const { client, wx } = setup({ users: { lisi: 'acme' }, inactive: ['lisi'] }, { userid: 'lisi' });
  await assert.rejects(client.login(), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.code, 'user_inactive');
    assert.equal(e.status, 403);
    assert.match(e.detail, /user_inactive/);
    assert.equal(e.message, '你的企业微信账号已停用或未激活');
    return true;
  });
  assert.equal(wx.store.get('wecomgate'), undefined);
  assert.equal(client.session(), null);
  // A failed login is not cached: the next call tries again.
  await assert.rejects(client.login(), { code: 'user_inactive' });
  assert.equal(wx.qyLogins, 2);
});

test('wrong_corp that cannot be resolved surfaces with its corp', async () => {
  const { client, gateway } = setup();
  const handle = gateway.handle;
  gateway.handle = (req) => (req.url.endsWith('/wecom/login')
    ? { statusCode: 409, data: JSON.stringify({ error: 'wrong_corp', message: 'm', corp: 'partner' }), header: {} } : handle(req));
  await assert.rejects(client.login(), (e) => e.code === 'wrong_corp' && e.status === 409 && e.corp === 'partner');
});

test('API errors and network failures carry code and status', async () => {
  const { client } = setup();
  await assert.rejects(client.request('/api/missing'), (e) => e.code === 'not_found' && e.status === 404 && e.data.message === 'no such order');
  const down = setup({}, { network: 'down' }).client;
  await assert.rejects(down.login(), (e) => e.code === 'network_error' && e.status === 0 && /timeout/.test(e.detail));
});

test('review login outside WeCom', async () => {
  const { client, wx, gateway } = setup({}, { environment: undefined });
  assert.equal(client.isWeCom(), false);
  await assert.rejects(client.login(), { code: 'not_wecom' });
  // No session and no WeCom: the request goes out bare and the 401 is the caller's.
  await assert.rejects(client.request('/api/public/a'), { code: 'unauthenticated', status: 401 });
  assert.equal(paths(wx).filter((p) => p === '/wecom/login').length, 0);
  await assert.rejects(client.reviewLogin('reviewer', 'wrong'), { code: 'unauthenticated', status: 401 });
  const s = await client.reviewLogin('reviewer', 'review-demo');
  assert.equal(s.review, true);
  assert.equal(s.userid, 'review:reviewer');
  assert.deepEqual(gateway.logins, []);
  const res = await client.request('/api/public/a');
  assert.equal(res.data.userid, 'review:reviewer');
  // An expired review session cannot be renewed without the password: 401 surfaces, token dropped.
  gateway.tokens.clear();
  await assert.rejects(client.request('/api/public/a'), { code: 'unauthenticated' });
  assert.equal(client.session(), null);
});

test('logout ends the session at the gateway and clears storage', async () => {
  const { client, wx, gateway } = setup({ users: { zhaoliu: 'partner' } }, { userid: 'zhaoliu' });
  await client.login();
  const token = client.session().token;
  await client.logout();
  const last = wx.requests[wx.requests.length - 1];
  assert.equal(last.url, BASE + '/wecom/logout');
  assert.equal(last.method, 'POST');
  assert.equal(last.header.Authorization, 'Bearer ' + token);
  assert.equal(gateway.tokens.has(token), false);
  assert.equal(wx.store.has('wecomgate'), false);
  assert.equal(client.session(), null);
  await client.logout(); // nothing to end: no request
  assert.equal(wx.requests[wx.requests.length - 1], last);
});

test('logout clears storage even when the gateway cannot be reached', async () => {
  const { client, wx } = setup({}, { network: 'down' });
  wx.store.set('wecomgate', { token: 't', expiresAt: Date.now() + 60000 });
  await assert.rejects(client.logout(), { code: 'network_error' });
  assert.equal(wx.store.has('wecomgate'), false);
});

// --- issue 18: each item as the mini program developer found it ---

test("a backend's own 401 with {error:unauthenticated} is returned as is: no login, no second POST", async () => {
  const { client, wx } = setup({}, { lowerHeaders: true });
  await client.login();
  await assert.rejects(client.request({ url: '/api/legacy401', method: 'POST', data: { n: 1 } }),
    (e) => e.code === 'unauthenticated' && e.status === 401 && e.message === '登录已失效，请重新登录');
  assert.equal(paths(wx).filter((p) => p === '/api/legacy401').length, 1);
  assert.equal(wx.qyLogins, 1);
  assert.ok(client.session(), 'the token is kept: the gateway did not refuse it');
});

test("the gateway's 401 is recognised with a lower-case www-authenticate (HTTP/2)", async () => {
  const { client, wx, gateway } = setup({}, { lowerHeaders: true });
  await client.login();
  gateway.tokens.clear();
  const res = await client.request({ url: '/api/orders', method: 'POST' });
  assert.equal(res.statusCode, 200);
  assert.equal(wx.qyLogins, 2);
});

test('a stuck wx.qy.login rejects after loginTimeout and a later request tries again', async () => {
  const { client, wx } = setup({}, { qyStuck: (n) => n === 1 }, { loginTimeout: 40 });
  const t0 = Date.now();
  await assert.rejects(client.request('/api/orders'), (e) => e.code === 'login_timeout' && e.status === 0);
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(wx.qyLoginOptions[0].timeout, 40);
  const res = await client.request('/api/orders');
  assert.equal(res.statusCode, 200);
  assert.equal(wx.qyLogins, 2);
});

test('the token goes to the gateway origin only', async () => {
  const { client, wx, gateway } = setup();
  const handle = gateway.handle;
  gateway.handle = (req) => {
    const u = new URL(req.url);
    if (u.origin !== BASE) return { statusCode: 200, data: { ok: true }, header: {} }; // another host
    return handle(Object.assign({}, req, { url: BASE + u.pathname }));
  };
  await client.request('/api/a');
  for (const url of ['https://thirdparty.example.net/x', 'https://gw.example.com.evil.net/x', 'http://gw.example.com/x',
    'https://gw.example.com:8443/x', 'https://gw.example.com@evil.net/x']) {
    await client.request({ url, header: { 'X-Trace': '1' } });
    const sent = wx.requests[wx.requests.length - 1];
    assert.equal(sent.url, url);
    assert.equal(sent.header.Authorization, undefined, url);
  }
  await client.request('https://GW.example.com:443/api/b'); // the same origin, spelled differently
  assert.match(wx.requests[wx.requests.length - 1].header.Authorization, /^Bearer /);
  assert.equal(wx.qyLogins, 1);
});

test('a path without a leading slash is joined to baseURL', async () => {
  const { client, wx } = setup();
  await client.request('api/orders');
  assert.equal(wx.requests[1].url, BASE + '/api/orders');
  assert.match(wx.requests[1].header.Authorization, /^Bearer /);
});

test("a caller's lower-case authorization header is replaced, not doubled", async () => {
  const { client, wx } = setup();
  const res = await client.request({ url: '/api/a', header: { authorization: 'Bearer stale', 'X-A': '1' } });
  assert.equal(res.statusCode, 200);
  const h = wx.requests[1].header;
  assert.deepEqual(Object.keys(h).filter((k) => k.toLowerCase() === 'authorization'), ['Authorization']);
  // Elsewhere the caller's header is theirs.
  await client.request({ url: 'https://other.example.net/a', header: { authorization: 'Basic x' } }).catch(() => {});
  assert.equal(wx.requests[2].header.authorization, 'Basic x');
});

test('Retry-After in lower case becomes err.retryAfter (seconds)', async () => {
  const { client } = setup({}, { lowerHeaders: true });
  await assert.rejects(client.request('/api/busy'), (e) => {
    assert.equal(e.code, 'wecom_unavailable');
    assert.equal(e.retryAfter, 7);
    assert.equal(e.message, '企业微信暂时不可用，请稍后再试');
    assert.equal(e.detail, 'busy');
    return true;
  });
});

test('messages: custom map, the gateway text with messages:false, http_<status> template', async () => {
  const custom = setup({}, {}, { messages: { not_found: '没有这个订单' } }).client;
  await assert.rejects(custom.request('/api/missing'), { code: 'not_found', message: '没有这个订单' });
  await assert.rejects(custom.request('/api/plain401'), { code: 'http_401', message: '请求失败（HTTP 401）' });
  const english = setup({}, {}, { messages: false }).client;
  await assert.rejects(english.request('/api/missing'), { code: 'not_found', message: 'no such order' });
});

test('logout during a login in flight ends signed out', async () => {
  const { client, wx } = setup();
  const pending = client.request('/api/orders');
  await new Promise((r) => setTimeout(r, 0)); // wx.qy.login under way
  await client.logout();
  await assert.rejects(pending, { code: 'signed_out' });
  assert.equal(client.session(), null);
  assert.equal(wx.store.has('wecomgate'), false);
  assert.equal(paths(wx).includes('/api/orders'), false);
});

test('failing storage keeps the token in memory: one login, not one per request', async () => {
  for (const storage of ['full', 'broken']) {
    const { client, wx } = setup({}, { storage });
    for (let i = 0; i < 3; i++) assert.equal((await client.request('/api/a')).statusCode, 200);
    assert.equal(wx.qyLogins, 1, storage);
    await client.logout();
    assert.equal(client.session(), null);
  }
});

test('invalid_code is retried once with a fresh code, not twice', async () => {
  const { client, wx, gateway } = setup();
  const handle = gateway.handle;
  let refuse = 1;
  gateway.handle = (req) => (req.url.endsWith('/wecom/login') && refuse-- > 0
    ? { statusCode: 401, data: { error: 'invalid_code', message: '40029' }, header: {} } : handle(req));
  assert.equal((await client.login()).userid, 'zhangsan');
  assert.equal(wx.qyLogins, 2);
  refuse = 5;
  await assert.rejects(client.login(), { code: 'invalid_code' });
  assert.equal(wx.qyLogins, 4);
});

test('login({corp}) during another login honours the corp', async () => {
  const { client, gateway } = setup({ users: { zhaoliu: 'partner' } }, { userid: 'zhaoliu' }, { corp: 'partner' });
  const first = client.login();
  const second = client.login({ corp: 'acme' });
  assert.equal((await first).corp, 'partner');
  // The second login ran after the first, naming acme (then wrong_corp led back to partner).
  assert.equal((await second).corp, 'partner');
  assert.deepEqual(gateway.logins.map((b) => b.corp), ['partner', 'acme', 'partner']);
  const same = setup().client;
  const a = same.login({ corp: 'acme' });
  assert.equal(same.login({ corp: 'acme' }), a); // the same corp shares the login
  await a;
});

test('uploadFile: token, gateway 401 rule via onHeadersReceived, parsed error body', async () => {
  const { client, wx, gateway } = setup();
  const res = await client.uploadFile({ url: '/api/upload', filePath: 'wxfile://tmp_a', name: 'file', formData: { k: 'v' } });
  assert.equal(res.statusCode, 200);
  assert.equal(JSON.parse(res.data).userid, 'zhangsan');
  gateway.tokens.clear();
  const again = await client.uploadFile({ url: '/api/upload', filePath: 'wxfile://tmp_a', name: 'file' });
  assert.equal(again.statusCode, 200);
  assert.equal(wx.qyLogins, 2);
  assert.equal(paths(wx).filter((p) => p === '/api/upload').length, 3);
  await assert.rejects(client.uploadFile({ url: '/api/legacy401', filePath: 'f', name: 'file' }), { code: 'unauthenticated' });
  assert.equal(wx.qyLogins, 2);
});

test('downloadFile: token, 401 rule, error code read from the temp file', async () => {
  const { client, wx, gateway } = setup();
  const res = await client.downloadFile('/files/report.pdf');
  assert.equal(res.statusCode, 200);
  assert.equal(wx.files.get(res.tempFilePath), 'file-bytes:zhangsan');
  gateway.tokens.clear();
  assert.equal((await client.downloadFile({ url: '/files/x' })).statusCode, 200);
  assert.equal(wx.qyLogins, 2);
  await assert.rejects(client.downloadFile('/api/missing'), { code: 'not_found', status: 404 });
});

test('abort: before the send nothing goes out; during, the task is aborted', async () => {
  const { client, wx } = setup({}, { delay: () => 30 });
  const early = client.request('/api/a');
  early.abort();
  await assert.rejects(early, { code: 'aborted' });
  assert.equal(paths(wx).includes('/api/a'), false);
  await client.login();
  const late = client.uploadFile({ url: '/api/up', filePath: 'f', name: 'file' });
  let progressed = false;
  late.onProgressUpdate(() => { progressed = true; });
  await new Promise((r) => setTimeout(r, 5));
  late.abort();
  await assert.rejects(late, { code: 'aborted', message: '请求已取消' });
  assert.ok(progressed);
});

test('getToken: the stored token, a login in WeCom, empty outside', async () => {
  const { client, wx } = setup();
  const t = await client.getToken();
  assert.equal(t, client.session().token);
  assert.equal(await client.getToken(), t);
  assert.equal(wx.qyLogins, 1);
  assert.equal(await setup({}, { environment: undefined }).client.getToken(), '');
});

test('more than 10 parallel requests after a revoked token: one login, at most 10 in flight', async () => {
  const { client, wx, gateway } = setup({}, { delay: () => 5 });
  await client.login();
  gateway.tokens.clear();
  const all = await Promise.all(Array.from({ length: 25 }, (_, i) => client.request('/api/i/' + i)));
  assert.ok(all.every((r) => r.statusCode === 200));
  assert.equal(wx.qyLogins, 2);
  assert.ok(wx.peak <= 10);
});

test('getMobile: a fresh login even with a valid token, then {encrypted_data, iv} to /wecom/decrypt', async () => {
  const { client, wx, gateway } = setup();
  const first = await client.login();
  assert.equal(wx.qyLogins, 1);
  assert.deepEqual(await client.getMobile(), { mobile: '13800000000' });
  assert.equal(wx.qyLogins, 2); // logged in again although the first token was still valid
  assert.deepEqual(wx.qyCalls, ['getMobile']);
  const fresh = client.session().token;
  assert.notEqual(fresh, first.token);
  const req = wx.requests[wx.requests.length - 1];
  assert.equal(req.url, BASE + '/wecom/decrypt');
  assert.equal(req.method, 'POST');
  assert.equal(req.header['Content-Type'], 'application/json');
  assert.equal(req.header.Authorization, 'Bearer ' + fresh);
  assert.deepEqual(req.data, { encrypted_data: 'enc:getMobile:code-2-zhangsan', iv: 'iv:code-2-zhangsan' });
  assert.deepEqual(paths(wx), ['/wecom/login', '/wecom/login', '/wecom/decrypt']);
  // The order matters: login, then wx.qy.getMobile (encrypted under that login's key).
  assert.equal(gateway.decrypts.length, 1);
});

test('getEmail and getEnterpriseUserInfo; without any session they sign in first too', async () => {
  const { client, wx } = setup();
  assert.deepEqual(await client.getEmail(), { email: 'zhangsan@example.com' });
  assert.deepEqual(await client.getEnterpriseUserInfo(), { corpid: 'wwacme', userid: 'zhangsan', name: 'ZHANGSAN', gender: 1 });
  assert.equal(wx.qyLogins, 2);
  assert.deepEqual(wx.qyCalls, ['getEmail', 'getEnterpriseUserInfo']);
});

test('getMobile: consent refused is qy_consent_refused, and nothing is posted', async () => {
  const { client, wx, gateway } = setup({}, { consent: false });
  await assert.rejects(client.getMobile(), (e) => {
    assert.equal(e.name, 'WecomgateError');
    assert.equal(e.code, 'qy_consent_refused');
    assert.equal(e.status, 0);
    assert.equal(e.message, '未获得你的授权，无法获取该信息');
    assert.match(e.detail, /getMobile:fail auth deny/);
    return true;
  });
  assert.equal(gateway.decrypts.length, 0);
  assert.deepEqual(paths(wx), ['/wecom/login']);
});

test('getMobile: a gateway without decrypt answers 404, the kit rejects with not_found', async () => {
  const { client } = setup({ decrypt: false });
  await assert.rejects(client.getMobile(), (e) => e.code === 'not_found' && e.status === 404 && e.message === '请求的内容不存在');
  assert.ok(client.session()); // the login it made stays
});

test('getMobile: the gateway refusing to decrypt is invalid_request, not retried', async () => {
  const { client, wx, gateway } = setup();
  // Another wx.qy.login between this login and wx.qy.getMobile: the data is under a newer key.
  const orig = wx.qy.getMobile;
  wx.qy.getMobile = (so) => wx.qy.login({ success: () => orig(so), fail: so.fail });
  await assert.rejects(client.getMobile(), (e) => e.code === 'invalid_request' && e.status === 400);
  assert.equal(gateway.decrypts.length, 1);
});

test('getMobile outside WeCom: not_wecom, no login, nothing sent', async () => {
  const { client, wx } = setup({}, { environment: undefined });
  for (const m of ['getMobile', 'getEmail', 'getEnterpriseUserInfo']) {
    await assert.rejects(client[m](), (e) => {
      assert.equal(e.code, 'not_wecom');
      assert.equal(e.message, '请在企业微信中打开本小程序');
      assert.match(e.detail, new RegExp('wx\\.qy\\.' + m));
      return true;
    });
  }
  assert.equal(wx.requests.length, 0);
  // A review session does not help: the reviewers are outside WeCom.
  await client.reviewLogin('reviewer', 'review-demo');
  await assert.rejects(client.getMobile(), (e) => e.code === 'not_wecom');
});
