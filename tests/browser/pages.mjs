// End-to-end tests of Gavel's pages in Debian's Chromium, driven by playwright-core (no browser download).
// Started by tests/api/browser.rs against the real server and simulated buyers:
//   node tests/browser/pages.mjs <base_url> <admin_token> <buyer_key> <seller_key> <screenshot_dir>
// The buyer is "harbor" (bids 10.00), the other buyer "cheapo" (bids 5.00), the seller "acme". Every page
// visited is saved as a screenshot; any failed check, page error or Content-Security-Policy violation
// exits non-zero with a message.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [base, adminToken, buyerKey, sellerKey, shots] = process.argv.slice(2);
if (!shots) {
  console.error('usage: node pages.mjs <base_url> <admin_token> <buyer_key> <seller_key> <screenshot_dir>');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const WAIT = 15_000;
const problems = [];
let shotCount = 0;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function shot(page, name) {
  shotCount += 1;
  const file = join(shots, `${String(shotCount).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

/** A seller's or operator's JSON call, as an integration would make it. */
async function api(path, key, body) {
  const response = await fetch(base + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  check(response.ok, `${path} answered ${response.status}: ${JSON.stringify(json)}`);
  return json;
}

const lead = { postal_code: '94107', state: 'CA', age: 34, homeowner: true };
let sales = 0;
async function ping(source) {
  return api('/v1/ping', sellerKey, { campaign: 'auto', lead, ...(source ? { source } : {}) });
}
async function sell(source) {
  const answer = await ping(source);
  check(answer.status === 'bid', `the ping got a bid: ${JSON.stringify(answer)}`);
  sales += 1;
  // A new phone and email each time: a buyer is never sold the same contact twice.
  const full = { ...lead, first_name: 'Ada', last_name: 'Lovelace', phone: `212867${String(sales).padStart(4, '0')}`,
                 email: `ada${sales}@example.com` };
  const sold = await api('/v1/post', sellerKey, { ping_id: answer.ping_id, lead: full });
  check(sold.status === 'sold', `the post sold: ${JSON.stringify(sold)}`);
  return sold;
}

/** Money as whole cents, exactly (never a float). */
function cents(text) {
  const match = /^(-?)(\d+)\.(\d\d)$/.exec(text.trim());
  check(match, `money text ${JSON.stringify(text)}`);
  return (match[1] ? -1n : 1n) * (BigInt(match[2]) * 100n + BigInt(match[3]));
}

async function newPage(browser, who) {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`${who}: console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`${who}: page error: ${error.message}`));
  return page;
}

async function signIn(page, key, home, name, byKeyboard) {
  await page.goto(`${base}/login`);
  await shot(page, `${name}-sign-in`);
  if (byKeyboard) {
    // Every control works from the keyboard: the key field has focus, Enter submits.
    await page.keyboard.type(key);
    await page.keyboard.press('Enter');
  } else {
    await page.getByLabel('Key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  await page.waitForURL(`${base}${home}`);
}

/** Marks the document so that a later check can tell it was not reloaded. */
async function markDocument(page) {
  await page.evaluate(() => { window.gavelTestMark = 'same document'; });
}
async function sameDocument(page) {
  return (await page.evaluate(() => window.gavelTestMark)) === 'same document';
}

const browser = await chromium.launch({
  executablePath: process.env.GAVEL_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Playwright gives each launch a fresh, empty profile (--user-data-dir in a new temporary directory).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});

try {
  // --- The operator watches the exchange live.
  const operator = await newPage(browser, 'operator');
  await signIn(operator, adminToken, '/console', 'operator', false);
  await shot(operator, 'dashboard');
  const chart = operator.getByRole('img', { name: 'Auctions and sales per minute over the last hour', exact: true });
  await chart.waitFor();
  await markDocument(operator);
  const first = await ping();
  await operator.locator('#auction-rows').getByRole('link', { name: first.ping_id }).waitFor();
  await operator.locator('#fig-aps').filter({ hasNotText: /^0\.0$/ }).waitFor();
  await operator.locator('#chart desc').filter({ hasText: /[1-9]\d* auctions/ }).waitFor({ state: 'attached' });
  check(await sameDocument(operator), 'the dashboard updated without reloading');
  await shot(operator, 'dashboard-live');

  await operator.getByRole('link', { name: 'Auctions', exact: true }).click();
  await operator.waitForURL(`${base}/console/auctions`);
  await markDocument(operator);
  const second = await ping();
  const row = operator.locator('#auction-rows').getByRole('link', { name: second.ping_id });
  await row.waitFor();
  check(await sameDocument(operator), 'the auction list updated without reloading');
  await shot(operator, 'auctions-live');
  await row.click();
  await operator.waitForURL(`${base}/console/auctions/${second.ping_id}`);
  const harborRow = operator.getByRole('row', { name: /^harbor/ });
  check((await harborRow.innerText()).includes('bid'), 'the trace shows harbor\'s bid');
  check((await operator.getByRole('row', { name: /^cheapo/ }).innerText()).includes('5.00'), 'the trace shows cheapo\'s bid');
  await shot(operator, 'auction-trace');

  // Pause a buyer; the next ping excludes it.
  await operator.goto(`${base}/console/buyers`);
  await shot(operator, 'buyers');
  await operator.getByRole('button', { name: 'Pause harbor' }).click();
  await operator.waitForURL(/\/console\/buyers\?done=paused/);
  await operator.getByRole('status').waitFor();
  await shot(operator, 'buyers-paused');
  const third = await ping();
  await operator.goto(`${base}/console/auctions/${third.ping_id}`);
  const excluded = await operator.getByRole('row', { name: /^harbor/ }).innerText();
  check(/excluded\s+paused/.test(excluded), `the ping after the pause excludes harbor as paused: ${excluded}`);
  await shot(operator, 'trace-paused');
  await operator.goto(`${base}/console/buyers/harbor`);
  await shot(operator, 'buyer-paused');
  await operator.getByRole('button', { name: 'Resume harbor' }).click();
  await operator.waitForURL(/\/console\/buyers\/harbor\?done=resumed/);
  check((await operator.locator('.checklist').innerText()).includes('Active: yes'), 'harbor is active again');
  await shot(operator, 'buyer-resumed');

  // --- A buyer reads its policy and files a return.
  const sold = await sell('fb-lookalike-3');
  const leadId = sold.lead_id;
  const price = '10.00'; // harbor's bid, first price
  const buyer = await newPage(browser, 'buyer');
  await signIn(buyer, buyerKey, '/portal', 'buyer', true);
  await shot(buyer, 'buyer-overview');
  const balanceBefore = cents(await buyer.locator('#balance').innerText());
  await buyer.getByRole('link', { name: `Return lead ${leadId}` }).click();
  await buyer.waitForURL(`${base}/portal/leads/${leadId}/return`);
  check((await buyer.locator('#policy-window').innerText()).includes('7 days'), 'the form shows the window first');
  check((await buyer.locator('#policy-reasons').innerText()).includes('wrong_number'), 'the form shows the reasons');
  check((await buyer.locator('#policy-note').innerText()).includes('defects only'), 'the form shows the policy note');
  await shot(buyer, 'return-form');
  await buyer.getByLabel('Reason').selectOption('wrong_number');
  await buyer.getByLabel('Note (optional)').fill('number disconnected');
  await buyer.getByRole('button', { name: 'File the return' }).click();
  await buyer.waitForURL(/\/portal\/returns\/r_[0-9a-f]+$/);
  const returnId = buyer.url().split('/').pop();
  check((await buyer.locator('#return-status').innerText()) === 'pending_review', 'the first return waits for review');
  check((await buyer.locator('#return-answer').innerText()).includes('Waiting for review'), 'the answer says why');
  await shot(buyer, 'return-answer');
  await buyer.goto(`${base}/portal/returns`);
  await shot(buyer, 'buyer-returns');
  await buyer.goto(`${base}/portal/leads`);
  await shot(buyer, 'buyer-leads');
  const [download] = await Promise.all([
    buyer.waitForEvent('download'),
    buyer.getByRole('link', { name: 'Download these leads as CSV' }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  check(csv.startsWith('lead_id,campaign,price,delivered_at,returnable_until,return_status\r\n'), `CSV header: ${csv}`);
  check(csv.includes(`${leadId},auto,10.00,`) && csv.includes(',pending_review\r\n'), `CSV has the lead: ${csv}`);
  await buyer.goto(`${base}/portal/statement`);
  await shot(buyer, 'buyer-statement');
  const seen = problems.length;
  const refused = await buyer.goto(`${base}/console`);
  check(refused.status() === 403, `a buyer's session on the console is refused: ${refused.status()}`);
  await shot(buyer, 'buyer-on-console');
  // The browser logs the refusal it was meant to get; that one is no problem.
  problems.splice(seen, problems.length - seen, ...problems.slice(seen).filter((p) => !p.includes('status of 403')));

  // --- The operator approves the return; the buyer's balance changes by the price.
  await operator.goto(`${base}/console/returns`);
  await shot(operator, 'returns-queue');
  await operator.locator(`#note-approve-${returnId}`).fill('checked: the number is disconnected');
  await operator.getByRole('button', { name: `Approve return ${returnId}` }).click();
  await operator.waitForURL(/\/console\/returns\?done=approved/);
  check((await operator.getByRole('row', { name: new RegExp(`^${returnId}`) }).innerText()).includes('operator_approved'),
        'the decision is listed');
  await shot(operator, 'returns-approved');
  await buyer.goto(`${base}/portal`);
  const balanceAfter = cents(await buyer.locator('#balance').innerText());
  check(balanceAfter - balanceBefore === cents(price), `balance ${balanceBefore} → ${balanceAfter}: credited ${price}`);
  await shot(buyer, 'buyer-credited');
  await buyer.goto(`${base}/portal/returns/${returnId}`);
  check((await buyer.locator('#return-status').innerText()) === 'approved', 'the buyer sees the approval');
  await shot(buyer, 'buyer-return-approved');

  // --- The seller sees the return under its source, and never a buyer's name.
  const seller = await newPage(browser, 'seller');
  await signIn(seller, sellerKey, '/portal', 'seller', false);
  await shot(seller, 'seller-overview');
  const bySource = await seller.getByRole('table', { name: 'Returns by source' }).getByRole('row', { name: /^fb-lookalike-3/ }).innerText();
  check(/fb-lookalike-3\s+1\s+1\s+0\s+0\s+\d+\.\d\d/.test(bySource), `returns by source: ${bySource}`);
  const quality = await seller.getByRole('table', { name: 'Your sources over the period' }).innerText();
  check(quality.includes('fb-lookalike-3'), `source quality lists the source: ${quality}`);
  for (const path of ['/portal', '/portal/returns', '/portal/statement']) {
    await seller.goto(base + path);
    const text = await seller.locator('main').innerText();
    check(!/harbor|cheapo/.test(text), `the seller's ${path} names no buyer`);
    await shot(seller, `seller${path.replaceAll('/', '-')}`);
  }

  // --- The rest of the console, each page once.
  for (const path of ['/console/report', `/console/leads/${leadId}`, '/console/ledger', '/console/ledger/buyer:harbor',
                      '/console/buyers/cheapo', '/console/config']) {
    const response = await operator.goto(base + path);
    check(response.status() === 200, `${path} answers 200, not ${response.status()}`);
    await shot(operator, `console${path.replaceAll(/[/:]/g, '-')}`);
  }
  await operator.getByRole('button', { name: 'Reload the config file' }).click();
  await operator.waitForURL(/\/console\/config\?done=reloaded/);
  await shot(operator, 'config-reloaded');
  await operator.getByRole('button', { name: 'Sign out' }).click();
  await operator.waitForURL(`${base}/login`);
  const after = await operator.goto(`${base}/console`);
  check(after.url() === `${base}/login`, 'after signing out the console sends to the sign-in page');
  await shot(operator, 'signed-out');

  check(problems.length === 0, `no page error or CSP violation:\n${problems.join('\n')}`);
  console.log(`browser tests passed; ${shotCount} screenshots in ${shots}`);
} catch (error) {
  console.error(error.stack || String(error));
  if (problems.length) console.error(`also seen:\n${problems.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
