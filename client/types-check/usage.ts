// Compiled with `tsc --noEmit --strict` by types-check/run.sh: the kit's types as a developer uses them.
import { createClient, zhCN, Session, WecomgateError, ErrorCode, MobileInfo, EnterpriseUserInfo } from 'wecomgate-client';

declare const wx: object;

const api = createClient({
  baseURL: 'https://api.example.com',
  wx,
  corp: 'acme',
  storageKey: 'wecomgate',
  endpoints: '/wecom',
  loginTimeout: 10000,
  messages: { not_found: '没有这个订单', http_error: '请求失败（{status}）' },
});
createClient({ baseURL: 'https://api.example.com', messages: false });
const zh: string | undefined = zhCN.unauthenticated ?? zhCN.qy_consent_refused;

interface Orders { orders: { id: number; title: string }[] }

async function use(): Promise<void> {
  const inWeCom: boolean = api.isWeCom() && (await api.detectWeCom());
  const s: Session = inWeCom ? await api.login({ corp: 'partner' }) : await api.reviewLogin('reviewer', 'pw');
  const who: string = s.userid + s.name + (s.corp ?? '') + (s.review ? 'review' : '') + s.expiresAt;
  const task = api.request<Orders>({ url: 'api/orders', method: 'POST', data: { page: 1 }, header: { 'X-A': '1' } });
  task.abort();
  const res = await task;
  const titles: string[] = res.data.orders.map((o) => o.title);
  const code: number = (await api.request('/api/me')).statusCode;
  const up = api.uploadFile({ url: '/api/upload', filePath: 'wxfile://tmp', name: 'file', formData: { k: 'v' } });
  up.onProgressUpdate((p) => p.progress);
  const body: string = (await up).data;
  const file: string = (await api.downloadFile('/files/a.pdf')).tempFilePath;
  const token: string = await api.getToken();
  const current: Session | null = api.session();
  const { mobile } = await api.getMobile();
  const m: MobileInfo = await api.getMobile();
  const email: string = (await api.getEmail()).email;
  const info: EnterpriseUserInfo = await api.getEnterpriseUserInfo();
  const person: string = info.corpid + info.userid + info.name + info.gender;
  await api.logout();
  void [who, titles, code, body, file, token, current, zh, mobile.length, m, email, person];
}

use().catch((e: WecomgateError) => {
  const c: ErrorCode = e.code;
  const wait: number | undefined = e.retryAfter;
  if (c === 'wrong_corp') console.log(e.corp, e.status, e.detail, e.message, wait);
  if (c === 'qy_consent_refused' || c === 'not_wecom') console.log(e.detail);
});
