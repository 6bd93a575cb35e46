// End-to-end test of the Postern dashboard in a real (headless) Chromium.
//
// Run by tests/it/browser.rs (TEST_BROWSER=1), which starts `postern serve` and creates the
// admin. Input from the environment:
//   E2E_WEB       the web listener, e.g. http://127.0.0.1:8025
//   E2E_SMTP      the SMTP listener, e.g. 127.0.0.1:2525
//   E2E_EMAIL     the admin's email
//   E2E_PASSWORD  the admin's password (chosen with `--password-stdin`)
//   E2E_RCPT      a recipient Postern accepts
//   E2E_CHROMIUM  the browser (default /usr/bin/chromium)
//   E2E_DEV_WEB, E2E_DEV_SMTP  optional: a `postern dev` (open on loopback, keeps messages),
//                 where the hostile mail's HTML body is shown in the sandboxed iframe
//   E2E_SECOND_EMAIL, E2E_SECOND_PASSWORD  a second user and the one-time password
//                 `postern user add` printed for them: they must be made to replace it
//   E2E_SCREENSHOTS  the directory for the screenshots (tests/it/browser.rs passes
//                 TEST_ARTIFACTS_DIR, by default target/ci-artifacts/browser/)
// Exit status 0 when every step passed; otherwise the failing step is printed.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set`);
    process.exit(2);
  }
  return value;
}
const shots = path.resolve(need('E2E_SCREENSHOTS'));
fs.mkdirSync(shots, { recursive: true });
const WEB = need('E2E_WEB').replace(/\/$/, '');
const [SMTP_HOST, SMTP_PORT] = need('E2E_SMTP').split(/:(?=\d+$)/);
const EMAIL = need('E2E_EMAIL');
const password = need('E2E_PASSWORD');
const RCPT = need('E2E_RCPT');
const SECOND_EMAIL = need('E2E_SECOND_EMAIL');
const SECOND_ONE_TIME = need('E2E_SECOND_PASSWORD');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 15_000;

function log(message) {
  console.log(`e2e: ${message}`);
}

// RFC 4648 base32 → bytes.
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[=\s]/g, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// RFC 6238 (HOTP of RFC 4226 over 30-second steps): SHA-1, 6 digits.
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}
const nowStep = () => Math.floor(Date.now() / 1000 / 30);
let lastStep = -1;
// A code Postern has not seen yet: codes are single-use and one step of drift is accepted.
function freshCode(secret) {
  const step = Math.max(nowStep(), lastStep + 1);
  if (step > nowStep() + 1) throw new Error('no unused TOTP step within the accepted drift');
  lastStep = step;
  return totp(secret, step);
}

// A minimal SMTP client: one message, every reply checked.
// With `refusedWith`, the recipient must be refused with that code (and nothing is sent).
function sendMail({ from, to, data, smtp = `${SMTP_HOST}:${SMTP_PORT}`, refusedWith }) {
  return new Promise((resolve, reject) => {
    const [host, port] = smtp.split(/:(?=\d+$)/);
    const socket = net.connect(Number(port), host);
    socket.setTimeout(STEP_TIMEOUT, () => socket.destroy(new Error('SMTP timeout')));
    const script = [
      [null, 220],
      [`EHLO browser.test`, 250],
      [`MAIL FROM:<${from}>`, 250],
      ...(refusedWith
        ? [[`RCPT TO:<${to}>`, refusedWith]]
        : [
            [`RCPT TO:<${to}>`, 250],
            [`DATA`, 354],
            [data.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..') + '\r\n.', 250],
          ]),
      [`QUIT`, 221],
    ];
    let buffer = '';
    let index = 0;
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let end;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (line[3] === '-') continue; // a multi-line reply goes on
        const expected = script[index][1];
        if (Number(line.slice(0, 3)) !== expected) {
          socket.destroy();
          reject(new Error(`SMTP: expected ${expected} after ${script[index][0]}, got ${line}`));
          return;
        }
        index += 1;
        if (index === script.length) {
          socket.end();
          resolve();
          return;
        }
        socket.write(script[index][0] + '\r\n');
      }
    });
    socket.on('error', reject);
  });
}

function message({ subject, text, html }) {
  const id = `<${crypto.randomUUID()}@browser.test>`;
  const boundary = 'b' + crypto.randomBytes(8).toString('hex');
  const headers = [
    `From: Browser Test <sender@browser.test>`,
    `To: <${RCPT}>`,
    `Subject: ${subject}`,
    `Message-ID: ${id}`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
  ];
  if (!html) {
    return [...headers, 'Content-Type: text/plain; charset=utf-8', '', text].join('\r\n');
  }
  return [
    ...headers,
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    text,
    `--${boundary}`,
    'Content-Type: text/html; charset=utf-8',
    '',
    html,
    `--${boundary}--`,
  ].join('\r\n');
}

// A one-connection-at-a-time SMTP server that keeps what it is given: the release target.
function smtpSink() {
  const received = [];
  const server = net.createServer((socket) => {
    let buffer = '';
    let data = null;
    const envelope = { from: null, to: [] };
    socket.write('220 sink.test ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      let end;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (data !== null) {
          if (line === '.') {
            received.push({ ...envelope, data: data.join('\r\n') });
            data = null;
            socket.write('250 2.0.0 kept by the sink\r\n');
          } else {
            data.push(line.startsWith('..') ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') socket.write('250-sink.test\r\n250 8BITMIME\r\n');
        else if (verb === 'MAIL') { envelope.from = line; socket.write('250 2.1.0 ok\r\n'); }
        else if (verb === 'RCPT') { envelope.to.push(line); socket.write('250 2.1.5 ok\r\n'); }
        else if (verb === 'DATA') { data = []; socket.write('354 go on\r\n'); }
        else if (verb === 'QUIT') { socket.end('221 bye\r\n'); }
        else socket.write('250 ok\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return { server, received };
}

// A mail with an HTML body showing a remote image, and a PNG attachment.
function mailWithImage({ subject, imageUrl, png }) {
  const boundary = 'm' + crypto.randomBytes(8).toString('hex');
  const alt = 'a' + crypto.randomBytes(8).toString('hex');
  return [
    'From: Alice Example <alice@images.test>',
    `To: <${RCPT}>`,
    `Subject: ${subject}`,
    `Message-ID: <${crypto.randomUUID()}@browser.test>`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    `Content-Type: multipart/alternative; boundary="${alt}"`,
    '',
    `--${alt}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    'The chart is attached; a zeppelin is drawn in the HTML.',
    `--${alt}`,
    'Content-Type: text/html; charset=utf-8',
    '',
    `<p>The chart:</p><img id="remote" src="${imageUrl}" width="20" height="20">`,
    `--${alt}--`,
    `--${boundary}`,
    'Content-Type: image/png; name="chart.png"',
    'Content-Disposition: attachment; filename="chart.png"',
    'Content-Transfer-Encoding: base64',
    '',
    png.toString('base64'),
    `--${boundary}--`,
  ].join('\r\n');
}

// An 8×8 PNG (red).
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGP4z8CAFWEXHbQSACj/P8Fu7N9hAAAAAElFTkSuQmCC',
  'base64',
);

// Every page must fit a phone: nothing wider than the screen (tables scroll inside).
async function fitsPhone(page, url, name) {
  await page.goto(url);
  await page.waitForLoadState('networkidle');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) {
    await page.screenshot({ path: path.join(shots, `overflow-${name}.png`), fullPage: true });
    throw new Error(`${url} is ${overflow}px wider than a 390px phone`);
  }
}

async function main() {
  // A local HTTP server that counts every request: anything the hostile mail makes the
  // browser load lands here.
  const pixelHits = [];
  const pixel = http.createServer((req, res) => {
    pixelHits.push(req.url);
    res.writeHead(200, { 'content-type': 'image/gif' });
    res.end();
  });
  await new Promise((resolve) => pixel.listen(0, '127.0.0.1', resolve));
  const pixelPort = pixel.address().port;

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-e2e-'));
  // A fresh profile (Playwright passes it as --user-data-dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 1400, height: 900 },
    headless: true,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const dialogs = [];
  const confirmsSeen = [];
  let expectConfirm = false;
  const liveStreams = [];
  const consoleLines = [];
  const pageErrors = [];
  const pixelRequests = [];
  const pixelResponses = [];
  const pixelFailures = [];
  try {
    context.setDefaultTimeout(STEP_TIMEOUT);
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('dialog', (dialog) => {
      // Postern's own confirmations, when a step expects one, are accepted; any other
      // dialog (the hostile mail's alert) is a failure.
      if (expectConfirm && dialog.type() === 'confirm') {
        confirmsSeen.push(dialog.message());
        expectConfirm = false;
        dialog.accept().catch(() => {});
        return;
      }
      dialogs.push(dialog.message());
      dialog.dismiss().catch(() => {});
    });
    page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    // Chromium may start a request that the Content-Security-Policy then blocks before it
    // leaves the browser: such a request is reported as failed and never reaches the server.
    // Only a response (or a hit on the server itself) is a load.
    const toPixel = (request) => new URL(request.url()).port === String(pixelPort);
    context.on('request', (request) => {
      if (toPixel(request)) pixelRequests.push(request.url());
      if (new URL(request.url()).pathname === '/live') liveStreams.push(request.url());
    });
    context.on('requestfailed', (request) => {
      if (toPixel(request)) pixelFailures.push(`${request.url()}: ${request.failure()?.errorText}`);
    });
    context.on('response', (response) => {
      if (toPixel(response.request())) pixelResponses.push(response.url());
    });

    // 1. Sign in with the password.
    log('sign in');
    await page.goto(`${WEB}/`);
    await page.waitForURL(/\/signin/);
    await page.fill('input[name=email]', EMAIL);
    await page.fill('input[name=password]', password);
    // The admin chose their password (`--password-stdin`): straight to the list.
    await Promise.all([page.waitForURL((u) => u.pathname === '/'), page.click('button[type=submit]')]);
    await page.locator('table#messages').waitFor();

    // 3. TOTP enrolment: the key from the page, the code computed here.
    log('TOTP enrolment');
    await page.goto(`${WEB}/account/totp`);
    const url = (await page.locator('#otpauth').textContent()).trim();
    const secret = new URL(url).searchParams.get('secret');
    if (!secret) throw new Error(`no secret in ${url}`);
    await page.fill('input[name=code]', freshCode(secret));
    await page.click('form[action="/account/totp"] button[type=submit]');
    const codes = (await page.locator('#recovery-codes li').allTextContents()).map((c) => c.trim());
    if (codes.length !== 10) throw new Error(`expected 10 recovery codes, got ${codes.length}`);
    log(`TOTP on, ${codes.length} recovery codes`);

    // 4. Sign out, then in again with password + TOTP.
    await page.goto(`${WEB}/`);
    await signOut(page);
    log('sign in with password + TOTP');
    await page.fill('input[name=email]', EMAIL);
    await page.fill('input[name=password]', password);
    await Promise.all([page.waitForURL(/\/signin\/totp/), page.click('button[type=submit]')]);
    await page.fill('input[name=code]', freshCode(secret));
    await Promise.all([
      page.waitForURL((u) => !u.pathname.startsWith('/signin')),
      page.click('button[type=submit]'),
    ]);
    if (new URL(page.url()).pathname !== '/') await page.goto(`${WEB}/`);
    await page.locator('table#messages').waitFor();

    // 5. A message arrives while the list is open: it shows up without a reload.
    log('message appears live (Server-Sent Events)');
    await page.evaluate(() => {
      window.__noReload = true;
    });
    const subject = `Browser test ${crypto.randomBytes(4).toString('hex')}`;
    await sendMail({
      from: 'sender@browser.test',
      to: RCPT,
      data: message({ subject, text: 'Hello from the browser test.' }),
    });
    const row = page.locator('table#messages tbody tr', { hasText: subject });
    await row.waitFor({ timeout: 30_000 });
    if (!(await page.evaluate(() => window.__noReload === true))) {
      throw new Error('the page was reloaded instead of updated in place');
    }
    if (!liveStreams.some((url) => url.includes('scope=inbound'))) {
      throw new Error(`the inbox opened no event stream: ${JSON.stringify(liveStreams)}`);
    }

    // 6. Its detail page.
    log('detail page');
    await Promise.all([
      page.waitForURL(/\/messages\/\d+$/),
      row.locator('a[href^="/messages/"]').first().click(),
    ]);
    await page.getByText(subject).first().waitFor();
    // The request to the app is under the Delivery tab.
    await page.click('nav.tabs a[href="#delivery"]');
    await page.locator('table#attempts').waitFor();
    await page.screenshot({ path: path.join(shots, 'detail-delivery.png'), fullPage: true });

    // 7. A hostile message: nothing runs, nothing loads.
    log('hostile message');
    const marker = `PWNED${crypto.randomBytes(3).toString('hex')}`;
    const pixelUrl = `http://127.0.0.1:${pixelPort}/pixel`;
    const hostileSubject = `Hostile <script>alert('${marker}')</script><img src=x onerror=alert('${marker}')>`;
    await page.goto(`${WEB}/`);
    const hostile = message({
      subject: hostileSubject,
      text: `<script>alert('${marker}')</script> ${pixelUrl}`,
      html: [
        `<html><head><meta http-equiv="refresh" content="0;url=${pixelUrl}?refresh"></head><body>`,
        `<script>alert('${marker}');console.log('${marker}');fetch('${pixelUrl}?fetch')</script>`,
        `<img src="${pixelUrl}">`,
        `<img src="x" onerror="alert('${marker}');console.log('${marker}')">`,
        `<form action="${pixelUrl}?form" method="post"><input name="p" value="1"><button>Go</button></form>`,
        `<svg onload="alert('${marker}')"></svg>`,
        `<iframe src="${pixelUrl}?iframe"></iframe>`,
        `<link rel="stylesheet" href="${pixelUrl}?css">`,
        '</body></html>',
      ].join('\n'),
    });
    await sendMail({ from: 'evil@browser.test', to: RCPT, data: hostile });
    const hostileRow = page.locator('table#messages tbody tr', { hasText: 'Hostile <script>' });
    await hostileRow.waitFor({ timeout: 30_000 });
    await Promise.all([
      page.waitForURL(/\/messages\/\d+$/),
      hostileRow.locator('a[href^="/messages/"]').first().click(),
    ]);
    await page.getByText('Hostile <script>').first().waitFor();
    // Give whatever the body might trigger (frames, images) its chance to load.
    await page.waitForLoadState('networkidle');
    const frames = page.locator('iframe');
    const hostileHtml = page.url() + '/html';
    if ((await frames.count()) > 0) {
      await frames.first().waitFor();
    }
    // The HTML body route, where it exists, directly too.
    const direct = await page.request.get(hostileHtml);
    log(`GET ${new URL(hostileHtml).pathname}: ${direct.status()}`);
    if (direct.status() === 200) {
      await page.goto(hostileHtml);
      await page.waitForLoadState('networkidle');
      await page.goBack();
    }
    await page.screenshot({ path: path.join(shots, 'hostile.png'), fullPage: true });

    // 7b. In dev mode the message is kept: its HTML body is in the sandboxed iframe.
    // As `localhost`, so that the two servers' cookies (which ignore ports) stay apart.
    const devWeb = process.env.E2E_DEV_WEB?.replace(/\/$/, '').replace('//127.0.0.1:', '//localhost:');
    const devSmtp = process.env.E2E_DEV_SMTP;
    if (devWeb && devSmtp) {
      log('hostile message, HTML body in the iframe (dev mode)');
      await page.goto(`${devWeb}/`);
      await page.locator('table#messages').waitFor();
      await sendMail({ from: 'evil@browser.test', to: RCPT, data: hostile, smtp: devSmtp });
      const devRow = page.locator('table#messages tbody tr', { hasText: 'Hostile <script>' });
      await devRow.waitFor({ timeout: 30_000 });
      await Promise.all([
        page.waitForURL(/\/messages\/\d+$/),
        devRow.locator('a[href^="/messages/"]').first().click(),
      ]);
      const iframe = page.locator('iframe[sandbox]');
      await iframe.waitFor();
      const src = await iframe.getAttribute('src');
      const frame = await (await iframe.elementHandle()).contentFrame();
      await frame.waitForLoadState('load');
      // The body really is in the frame (as inert markup), so the check below means something.
      await frame.locator('form').waitFor({ state: 'attached' });
      await page.waitForLoadState('networkidle');
      await page.screenshot({ path: path.join(shots, 'hostile-html.png'), fullPage: true });
      // Every tab shows the hostile mail as text (Source, Headers, Payload) or not at all.
      for (const tab of ['text', 'source', 'headers', 'payload', 'delivery', 'authentication', 'details', 'html']) {
        await page.click(`nav.tabs a[href="#${tab}"]`);
        await page.locator(`section#${tab}`).waitFor({ state: 'visible' });
        await page.waitForLoadState('networkidle');
      }
      const answer = await page.request.get(`${devWeb}${src}`);
      const csp = answer.headers()['content-security-policy'] || '';
      if (answer.status() !== 200 || !csp.includes('sandbox')) {
        throw new Error(`${src}: ${answer.status()}, CSP ${JSON.stringify(csp)}`);
      }
      // Opened on its own, the HTML body runs and loads nothing either.
      await page.goto(`${devWeb}${src}`);
      await page.waitForLoadState('networkidle');
      await page.screenshot({ path: path.join(shots, 'hostile-html-alone.png'), fullPage: true });
    } else {
      log('no E2E_DEV_WEB: the HTML body iframe is not checked');
    }

    // 8. A new address through the form.
    log('create an address');
    const address = `e2e-${crypto.randomBytes(3).toString('hex')}@example.com`;
    await page.goto(`${WEB}/addresses/new`);
    await page.fill('input[name=address]', address);
    await page.fill('input[name=target]', `${WEB}/target/200`);
    await Promise.all([
      page.waitForURL((u) => u.pathname !== '/addresses/new'),
      page.click('form[action="/addresses"] button[type=submit]'),
    ]);
    await page.goto(`${WEB}/addresses`);
    await page.getByText(address).first().waitFor();
    await page.screenshot({ path: path.join(shots, 'addresses.png'), fullPage: true });

    // 8b. A credential through the form: its token is shown once, never on the list.
    log('create a credential');
    const username = `e2e-${crypto.randomBytes(3).toString('hex')}`;
    await page.goto(`${WEB}/credentials`);
    await page.fill('input[name=username]', username);
    await page.click('form[action="/credentials"] button[type=submit]');
    const token = (await page.locator('code#token').textContent()).trim();
    const smtpUrl = (await page.locator('code#smtp-url').textContent()).trim();
    if (!token || !smtpUrl.includes(`${username}:${token}@`)) {
      throw new Error(`credential page: token ${JSON.stringify(token)}, SMTP URL ${JSON.stringify(smtpUrl)}`);
    }
    await page.screenshot({ path: path.join(shots, 'credential-made.png'), fullPage: true });
    await page.goto(`${WEB}/credentials`);
    await page.locator('table#credentials', { hasText: username }).waitFor();
    if ((await page.content()).includes(token)) throw new Error('the credentials list shows the token');
    await page.screenshot({ path: path.join(shots, 'credentials.png'), fullPage: true });

    // 8c. Dev mode: mail sent through the API is on the Sent list, its HTML in the iframe.
    if (devWeb) {
      log('sent mail (dev mode)');
      const sent = await page.request.post(`${devWeb}/api/v0.1/e2e-app/messages`, {
        headers: { Authorization: 'Bearer any' },
        data: { from: 'app@example.com', to: 'user@example.net', subject: 'E2E sent <b>mail</b>',
                plain: 'plain body', html: '<p>html body</p><form><input></form>' },
      });
      if (sent.status() !== 202) throw new Error(`send API: ${sent.status()} ${await sent.text()}`);
      await page.goto(`${devWeb}/outbound`);
      const sentRow = page.locator('table#outbound tbody tr', { hasText: 'E2E sent <b>mail</b>' });
      await sentRow.waitFor();
      await page.screenshot({ path: path.join(shots, 'outbound.png'), fullPage: true });
      await Promise.all([
        page.waitForURL(/\/outbound\/[0-9a-f-]{36}$/),
        sentRow.locator('a[href^="/outbound/"]').first().click(),
      ]);
      const sentFrame = page.locator('iframe[sandbox]');
      await sentFrame.waitFor();
      const frame = await (await sentFrame.elementHandle()).contentFrame();
      await frame.locator('form').waitFor({ state: 'attached' });
      await page.screenshot({ path: path.join(shots, 'outbound-detail.png'), fullPage: true });
      // Readable on a phone: nothing wider than the screen but the scrolling tables.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(shots, 'outbound-detail-phone.png'), fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) throw new Error(`the outbound detail is ${overflow}px wider than a phone`);
      await page.setViewportSize({ width: 1280, height: 900 });
    }

    // 8d. The inbox (dev mode keeps messages): live arrival, search, tabs, remote images,
    // previews, release, delete; the phone and dark views.
    if (devWeb) {
      await devInbox(page, devWeb, devSmtp, { liveStreams, confirmsSeen, setExpectConfirm: () => { expectConfirm = true; } });
    }

    // 8e. A recipient refused at RCPT is listed under its filter.
    log('refused recipient');
    await sendMail({ from: 'stranger@browser.test', to: 'nobody@example.com', refusedWith: 550 });
    await page.goto(`${WEB}/`);
    await page.locator('#refused a[href="/?status=refused"]').waitFor();
    await page.goto(`${WEB}/?status=refused`);
    await page.locator('table#messages tbody tr', { hasText: 'nobody@example.com' }).waitFor();

    // 8f. Every production page at 390px, and in dark mode.
    log('phone width, every page');
    await page.setViewportSize({ width: 390, height: 844 });
    const firstMessage = await page.request.get(`${WEB}/api/messages?limit=1`).then((r) => r.json());
    const pages = ['/', '/?status=refused', `/messages/${firstMessage.messages[0].id}`, '/outbound',
      '/credentials', '/sending-domains', '/suppressions', '/addresses', '/addresses/new', '/domains',
      '/domains/new', '/settings', '/privacy', '/users', '/keys', '/audit', '/data-requests', '/about',
      '/account', '/account/password'];
    for (const pathname of pages) {
      await fitsPhone(page, `${WEB}${pathname}`, pathname.replace(/[^a-z0-9]+/gi, '-') || 'root');
    }
    await page.goto(`${WEB}/`);
    await page.screenshot({ path: path.join(shots, 'phone-production.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    // 9. Sign out (from the list, whose navigation has the button).
    await page.goto(`${WEB}/`);
    await signOut(page);
    await page.goto(`${WEB}/`);
    await page.waitForURL(/\/signin/);

    // 10. A second user signs in with the one-time password `postern user add` printed, and
    // must choose a new one before anything else.
    log('second user: sign in with the one-time password');
    await page.fill('input[name=email]', SECOND_EMAIL);
    await page.fill('input[name=password]', SECOND_ONE_TIME);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/account/password'),
      page.click('button[type=submit]'),
    ]);
    await page.getByText('You signed in with a one-time password').waitFor();
    // Any other page sends them back here.
    await page.goto(`${WEB}/addresses`);
    await page.waitForURL((u) => u.pathname === '/account/password');
    log('forced password change');
    const secondPassword = `browser-${crypto.randomBytes(12).toString('hex')}`;
    await page.fill('input[name=password]', secondPassword);
    await page.fill('input[name=repeat]', secondPassword);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/'),
      page.click('form[action="/account/password"] button[type=submit]'),
    ]);
    await page.locator('table#messages').waitFor();

    // 11. My sessions: this browser's session, marked, signed out with its own button.
    log('my sessions');
    await page.goto(`${WEB}/account`);
    const sessions = page.locator('table#sessions tbody tr');
    await sessions.first().waitFor();
    if ((await sessions.count()) !== 1) throw new Error(`expected 1 session, got ${await sessions.count()}`);
    await sessions.first().getByText('this session').waitFor();
    await page.screenshot({ path: path.join(shots, 'account.png'), fullPage: true });
    await Promise.all([
      page.waitForURL(/\/signin/),
      sessions.first().locator('form[action^="/account/sessions/"] button').click(),
    ]);
    await page.goto(`${WEB}/`);
    await page.waitForURL(/\/signin/);

    // 12. The one-time password is spent; the new one signs in.
    log('second user: the new password, not the one-time one');
    await page.fill('input[name=email]', SECOND_EMAIL);
    await page.fill('input[name=password]', SECOND_ONE_TIME);
    await page.click('button[type=submit]');
    await page.locator('p.error[role=alert]').waitFor();
    if (new URL(page.url()).pathname !== '/signin') throw new Error(`the one-time password still works: ${page.url()}`);
    await page.fill('input[name=email]', SECOND_EMAIL);
    await page.fill('input[name=password]', secondPassword);
    await Promise.all([page.waitForURL((u) => u.pathname === '/'), page.click('button[type=submit]')]);
    await page.locator('table#messages').waitFor();
    await signOut(page);

    const failures = [];
    if (dialogs.length) failures.push(`dialogs opened: ${JSON.stringify(dialogs)}`);
    if (pixelResponses.length) failures.push(`loaded from the pixel server: ${JSON.stringify(pixelResponses)}`);
    const notCsp = pixelFailures.filter((f) => !/: (csp|net::ERR_BLOCKED_BY_CSP)$/.test(f));
    if (notCsp.length) failures.push(`pixel requests failed for another reason: ${JSON.stringify(notCsp)}`);
    if (pixelFailures.length !== pixelRequests.length) {
      failures.push(`requests to the pixel server not blocked: ${JSON.stringify({ pixelRequests, pixelFailures })}`);
    }
    if (pixelHits.length) failures.push(`the pixel server was hit: ${JSON.stringify(pixelHits)}`);
    const ran = consoleLines.filter((line) => line.includes(marker));
    if (ran.length) failures.push(`the hostile script logged: ${JSON.stringify(ran)}`);
    if (pageErrors.length) failures.push(`page errors: ${JSON.stringify(pageErrors)}`);
    if (failures.length) throw new Error(failures.join('\n'));
    log(`console lines (none from the mail): ${consoleLines.length}`);
    log(`requests to the pixel server blocked by the browser: ${JSON.stringify(pixelFailures)}`);
    log('PASS');
  } finally {
    await context.close();
    pixel.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// Dev mode's inbox, step by step (see 8d).
async function devInbox(page, devWeb, devSmtp, { liveStreams, confirmsSeen, setExpectConfirm }) {
  // Remote images come from here, and only once asked for.
  const imageHits = [];
  const images = http.createServer((req, res) => {
    imageHits.push(req.url);
    res.writeHead(200, { 'content-type': 'image/png' });
    res.end(PNG);
  });
  await new Promise((resolve) => images.listen(0, '127.0.0.1', resolve));
  const sink = smtpSink();
  await new Promise((resolve) => sink.server.listen(0, '127.0.0.1', resolve));
  try {
    log('dev inbox: live arrival over the event stream');
    const streams = liveStreams.length;
    await page.goto(`${devWeb}/`);
    await page.locator('table#messages').waitFor();
    await page.evaluate(() => { window.__noReload = true; });
    const subject = `Chart ${crypto.randomBytes(3).toString('hex')}`;
    const imageUrl = `http://127.0.0.1:${images.address().port}/remote.png`;
    await sendMail({ from: 'alice@images.test', to: RCPT, smtp: devSmtp,
      data: mailWithImage({ subject, imageUrl, png: PNG }) });
    const row = page.locator('table#messages tbody tr', { hasText: subject });
    await row.waitFor({ timeout: 10_000 });
    if (!(await page.evaluate(() => window.__noReload === true))) throw new Error('the inbox reloaded');
    if (liveStreams.length <= streams) throw new Error('no event stream was opened for the inbox');
    if (!/^\(\d+\) /.test(await page.title())) throw new Error(`no new-mail count in the title: ${await page.title()}`);
    if (!(await row.getAttribute('class'))?.includes('unread')) throw new Error('a new message is not unread');
    await row.getByText('Alice Example').waitFor();
    await page.screenshot({ path: path.join(shots, 'list.png'), fullPage: true });

    log('dev inbox: search with operators');
    await sendMail({ from: 'bob@other.test', to: RCPT, smtp: devSmtp,
      data: message({ subject: 'Unrelated note', text: 'Nothing to see.' }) });
    await page.locator('table#messages tbody tr', { hasText: 'Unrelated note' }).waitFor({ timeout: 10_000 });
    for (const [query, present, absent] of [
      ['from:alice has:attachment', subject, 'Unrelated note'],
      ['zeppelin', subject, 'Unrelated note'],
      ['-from:images.test is:unread', 'Unrelated note', subject],
    ]) {
      await page.keyboard.press('/');
      await page.keyboard.type(query);
      await Promise.all([page.waitForURL((u) => u.searchParams.get('q') === query), page.keyboard.press('Enter')]);
      await page.locator('table#messages tbody tr', { hasText: present }).waitFor();
      if (await page.locator('table#messages tbody tr', { hasText: absent }).count()) {
        throw new Error(`search ${query}: ${absent} listed`);
      }
    }
    await page.screenshot({ path: path.join(shots, 'search.png'), fullPage: true });

    log('dev inbox: keys open the detail page');
    await page.goto(`${devWeb}/?q=${encodeURIComponent('from:alice')}`);
    await page.keyboard.press('j');
    await Promise.all([page.waitForURL(/\/messages\/\d+$/), page.keyboard.press('Enter')]);
    const detailUrl = page.url();

    log('dev inbox: every tab');
    const tabs = ['html', 'text', 'source', 'headers', 'payload', 'delivery', 'authentication', 'details'];
    for (const tab of tabs) {
      await page.click(`nav.tabs a[href="#${tab}"]`);
      await page.locator(`section#${tab}`).waitFor({ state: 'visible' });
      const visible = await page.locator('section.tab:visible').count();
      if (visible !== 1) throw new Error(`tab ${tab}: ${visible} sections visible`);
    }
    await page.click('nav.tabs a[href="#source"]');
    await page.locator('#source-text', { hasText: `Subject: ${subject}` }).waitFor();
    await page.click('nav.tabs a[href="#headers"]');
    await page.locator('table#header-fields', { hasText: 'Message-ID' }).waitFor();
    await page.click('nav.tabs a[href="#payload"]');
    await page.locator('#payload-body', { hasText: '"envelope"' }).waitFor();
    await page.fill('#replay-url', 'http://127.0.0.1:9/hook');
    await page.locator('#replay-curl', { hasText: "'http://127.0.0.1:9/hook'" }).waitFor();
    const payload = await page.request.get(`${devWeb}/api/messages/${detailUrl.split('/').pop()}/payload`);
    if (!(await payload.text()).includes(subject)) throw new Error('the payload endpoint lacks the subject');
    await page.screenshot({ path: path.join(shots, 'detail-payload.png'), fullPage: true });
    await page.click('nav.tabs a[href="#authentication"]');
    await page.locator('#auth-results').waitFor();

    log('dev inbox: remote images only when asked, attachment preview');
    await page.click('nav.tabs a[href="#html"]');
    const frameOf = async () => (await page.locator('#html iframe[sandbox]').elementHandle()).contentFrame();
    let frame = await frameOf();
    await frame.locator('#remote').waitFor({ state: 'attached' });
    await page.waitForLoadState('networkidle');
    if (imageHits.length) throw new Error(`a remote image loaded before it was asked for: ${imageHits}`);
    const preview = page.locator('img.preview');
    await preview.waitFor();
    await page.waitForFunction(() => document.querySelector('img.preview').naturalWidth === 8);
    await page.screenshot({ path: path.join(shots, 'detail.png'), fullPage: true });
    await Promise.all([page.waitForURL(/images=on/), page.click('#images-on')]);
    frame = await frameOf();
    await frame.waitForFunction(() => document.getElementById('remote').naturalWidth === 8);
    if (!imageHits.includes('/remote.png')) throw new Error('the remote image did not load when asked for');

    log('dev inbox: release to an SMTP server');
    await page.goto(detailUrl);
    await page.click('details.release summary');
    await page.fill('input[name=server]', `127.0.0.1:${sink.server.address().port}`);
    await page.fill('input[name=recipients]', 'qa@release.test');
    await Promise.all([
      page.waitForURL(/released=/),
      page.click('form[action$="/release"] button[type=submit]'),
    ]);
    await page.locator('#released', { hasText: 'kept by the sink' }).waitFor();
    const released = sink.received.at(-1);
    if (!released || !released.to.join().includes('qa@release.test') || !released.data.includes(`Subject: ${subject}`)) {
      throw new Error(`the sink got ${JSON.stringify(released)}`);
    }

    log('dark mode');
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${devWeb}/`);
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (background !== 'rgb(23, 24, 26)') throw new Error(`dark mode background: ${background}`);
    await page.screenshot({ path: path.join(shots, 'dark.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });

    log('dev pages at 390px');
    await page.setViewportSize({ width: 390, height: 844 });
    for (const pathname of ['/', new URL(detailUrl).pathname, `${new URL(detailUrl).pathname}#payload`,
      '/outbound', '/settings', '/about', '/?q=status%3Abogus']) {
      await fitsPhone(page, `${devWeb}${pathname}`, `dev${pathname.replace(/[^a-z0-9]+/gi, '-')}`);
    }
    await page.goto(`${devWeb}/`);
    await page.screenshot({ path: path.join(shots, 'phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    log('dev inbox: delete one, then all');
    await page.goto(detailUrl);
    setExpectConfirm();
    await Promise.all([
      page.waitForURL(/deleted=1/),
      page.click('form[action$="/delete"] button[type=submit]'),
    ]);
    if (confirmsSeen.length !== 1) throw new Error(`expected one confirmation, saw ${JSON.stringify(confirmsSeen)}`);
    if ((await page.request.get(detailUrl)).status() !== 404) throw new Error('the deleted message is still there');
    await page.click('#delete-matching');
    await page.waitForURL(/\/messages\/delete/);
    await Promise.all([
      page.waitForURL(/deleted=/),
      page.click('form[action="/messages/delete"] button[type=submit]'),
    ]);
    const left = await page.request.get(`${devWeb}/api/messages`).then((r) => r.json());
    if (left.messages.length !== 0) throw new Error(`delete all left ${left.messages.length}`);
    await page.locator('#getting-started').waitFor();
  } finally {
    images.close();
    sink.server.close();
  }
}

async function signOut(page) {
  log('sign out');
  await Promise.all([
    page.waitForURL(/\/signin/),
    page.locator('form[action="/signout"]:not(:has(input[name=everywhere])) button').first().click(),
  ]);
}

main().catch((error) => {
  console.error(`e2e: FAIL: ${error.stack || error}`);
  process.exit(1);
});
