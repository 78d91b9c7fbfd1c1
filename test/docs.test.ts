/**
 * The API reference: /zstack/v1/openapi.json is a valid OpenAPI 3.1 document that covers every API of the
 * registry (as an operation, or as a `oneOf` entry titled with its name where APIs share a path and method),
 * with security schemes, job polling, inventory components and ZStack's reference examples; /docs loaded in
 * a real headless Chromium logs in through its form and runs SyncImageSize and CalculateImageHash with
 * "Try it out" against the running server.
 *
 * `ZIMAGE_DOCS_SCREENSHOT=docs/api-reference.png` also writes the page, after a Try-it call, as a PNG.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ALL_APIS } from '../src/api/server.js';
import { execFileP, opensslDigest, ROOT, startInProcess, tempDir, type TestServer, waitFor } from './helpers/zimage.js';

type Doc = Record<string, any>;
const CHROMIUM = '/usr/bin/chromium';
const normalised = (path: string) => path.replace(/\{[^}]+\}/g, '{}');

/** The operation serving `method path` (path variables may be named differently). */
function operationFor(doc: Doc, method: string, path: string): Doc | undefined {
  const key = Object.keys(doc.paths).find((p) => normalised(p) === normalised(`/zstack/v1${path}`));
  return key ? doc.paths[key][method.toLowerCase()] : undefined;
}

/** The request body schemas of an operation (the oneOf entries, or the single schema). */
const bodySchemas = (op: Doc): Doc[] => {
  const schema = op.requestBody?.content?.['application/json']?.schema;
  return schema ? (schema.oneOf ?? [schema]) : [];
};

describe('the OpenAPI document', () => {
  let server: TestServer;
  let doc: Doc;
  let actions: Doc;

  before(async () => {
    server = await startInProcess();
    const res = await fetch(`${server.url}/zstack/v1/openapi.json`);
    assert.equal(res.status, 200);
    doc = (await res.json()) as Doc;
    actions = doc.paths['/zstack/v1/images/{uuid}/actions'].put;
  });
  after(async () => server?.stop());

  test('validates as OpenAPI 3.1 (references resolve)', async () => {
    assert.equal(doc.openapi, '3.1.0');
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    assert.deepEqual(result.errors, undefined);
    assert.equal(result.valid, true);
    assert.equal(validator.version, '3.1');
  });

  test('every API of the registry is an operation or a oneOf entry titled with its name', () => {
    const ids = new Set<string>();
    for (const def of ALL_APIS) {
      const op = operationFor(doc, def.method, def.path);
      assert.ok(op, `${def.name}: no operation for ${def.method} ${def.path}`);
      const titles = bodySchemas(op).map((s) => s.title);
      assert.ok(
        op.operationId === def.name || new RegExp(`^${def.name}(By[A-Z]|_)`).test(op.operationId) || titles.includes(def.name),
        `${def.name} is not in ${op.operationId} [${titles.join(', ')}]`,
      );
      if (bodySchemas(op).length > 1)
        assert.match(op.description, new RegExp(`\\*\\*${def.name}\\*\\*`), `${def.name} listed in the operation's description`);
      ids.add(op.operationId);
    }
    const all = Object.values(doc.paths).flatMap((p: any) =>
      Object.values(p)
        .filter((o: any) => o?.operationId)
        .map((o: any) => o.operationId as string),
    );
    assert.equal(new Set(all).size, all.length, 'operationIds are unique');
  });

  test('PUT /images/{uuid}/actions is one operation whose body is a oneOf with one schema per API', () => {
    const titles = bodySchemas(actions).map((s) => s.title);
    for (const name of ['SyncImageSize', 'CalculateImageHash', 'UpdateImage', 'ChangeImageState', 'ExpungeImage', 'RecoverImage'])
      assert.ok(titles.includes(name), name);
    assert.equal(actions.summary.split(', ').length, titles.length);
    const sync = bodySchemas(actions).find((s) => s.title === 'SyncImageSize')!;
    assert.equal(sync.required, undefined, "SyncImageSize's action key is optional: ZStack's reference sends none");
    assert.equal(sync.additionalProperties, false);
    assert.match(sync.description, /without any action/);
    const hash = bodySchemas(actions).find((s) => s.title === 'CalculateImageHash')!;
    assert.deepEqual(hash.required, ['calculateImageHash']);
    const params = hash.properties.calculateImageHash;
    assert.deepEqual(params.required, ['backupStorageUuid']);
    assert.equal(params.properties.algorithm.default, 'MD5');
    assert.deepEqual(params.properties.algorithm.enum, ['MD5', 'SHA1', 'SHA256', 'SHA512', 'SM3']);
    assert.match(
      actions.description,
      /`algorithm` \(optional, string, one of MD5, SHA1, SHA256, SHA512, SM3 \(any case\), default "MD5"\)/,
    );
    assert.ok(hash.properties.systemTags && hash.properties.userTags);
    const update = bodySchemas(actions).find((s) => s.title === 'UpdateImage')!;
    assert.equal(update.properties.updateImage.properties.name.maxLength, 255);
    // Path variables named differently by the APIs sharing the route are one parameter.
    assert.deepEqual(
      actions.parameters.filter((p: Doc) => p.in === 'path').map((p: Doc) => p.name),
      ['uuid'],
    );
  });

  test('security: an OAuth session scheme and the access-key scheme, required except where ZStack needs no session', () => {
    const { OAuth, AccessKey } = doc.components.securitySchemes;
    assert.deepEqual({ type: OAuth.type, in: OAuth.in, name: OAuth.name }, { type: 'apiKey', in: 'header', name: 'Authorization' });
    assert.match(OAuth.description, /OAuth <session uuid>/);
    assert.deepEqual(
      { type: AccessKey.type, in: AccessKey.in, name: AccessKey.name },
      { type: 'apiKey', in: 'header', name: 'Authorization' },
    );
    assert.match(AccessKey.description, /ZStack <AccessKeyID>:<signature>/);
    assert.match(AccessKey.description, /Date/);
    assert.deepEqual(actions.security, [{ OAuth: [] }, { AccessKey: [] }]);
    assert.deepEqual(doc.paths['/zstack/v1/accounts/login'].put.security, []);
  });

  test('the api-jobs polling endpoint: 202 {} running, 200 result, 503 error', () => {
    const poll = doc.paths['/zstack/v1/api-jobs/{uuid}'].get;
    assert.deepEqual(Object.keys(poll.responses).sort(), ['200', '202', '404', '503']);
    assert.deepEqual(poll.responses['202'].content['application/json'].example, {});
    assert.equal(poll.responses['503'].content['application/json'].schema.$ref, '#/components/schemas/ErrorReply');
    assert.equal(actions.responses['202'].content['application/json'].schema.$ref, '#/components/schemas/AsyncAccepted');
  });

  test('inventories are components and the replies refer to them', () => {
    const schemas = doc.components.schemas;
    for (const name of [
      'ImageInventory',
      'ImageBackupStorageRefInventory',
      'BackupStorageInventory',
      'SftpBackupStorageInventory',
      'CephBackupStorageInventory',
      'SessionInventory',
      'ZoneInventory',
      'AccessKeyInventory',
      'TagInventory',
      'ErrorCode',
    ]) {
      assert.ok(schemas[name]?.properties, name);
    }
    assert.ok(schemas.ImageInventory.properties.md5Sum && schemas.ImageInventory.properties.actualSize);
    const hashReply = operationFor(doc, 'POST', '/images')!.responses['200'].content['application/json'].schema;
    assert.equal(hashReply.properties.inventory.$ref, '#/components/schemas/ImageInventory');
    const query = operationFor(doc, 'GET', '/images')!;
    assert.equal(
      query.responses['200'].content['application/json'].schema.properties.inventories.items.$ref,
      '#/components/schemas/ImageInventory',
    );
    assert.ok(query.parameters.some((p: Doc) => p.name === 'q' && p.in === 'query'));
    const login = doc.paths['/zstack/v1/accounts/login'].put;
    assert.equal(
      login.responses['200'].content['application/json'].schema.properties.inventory.$ref,
      '#/components/schemas/SessionInventory',
    );
  });

  test("ZStack's reference request and response examples are in the document", () => {
    const requests = actions.requestBody.content['application/json'].examples;
    assert.deepEqual(requests['SyncImageSize-zstack-reference'].value, { systemTags: ['<systemTags>'], userTags: ['<userTags>'] });
    assert.deepEqual(requests['CalculateImageHash-zstack-reference'].value, {
      calculateimagehash: { backupStorageUuid: '<backupStorageUuid>', algorithm: '<algorithm>' },
      systemTags: ['<systemTags>'],
      userTags: ['<userTags>'],
    });
    assert.deepEqual(requests.SyncImageSize.value, { syncImageSize: {} });
    assert.deepEqual(requests.CalculateImageHash.value, {
      calculateImageHash: { backupStorageUuid: '<backupStorageUuid>', algorithm: 'MD5' },
    });
    const responses = actions.responses['200'].content['application/json'].examples;
    assert.equal(responses.SyncImageSize.value.inventory.size, 209715200);
    assert.equal(responses.SyncImageSize.value.inventory.actualSize, 2329057);
    assert.equal(responses.CalculateImageHash.value.inventory.md5Sum, '6fc2357e711877c14c09eec960e51aed');
    assert.equal(responses.CalculateImageHash.value.inventory.backupStorageRefs[0].backupStorageUuid, '17f9f8d310763247b5dc31779d880a41');
  });

  test("zimage's own endpoints are listed: health, readiness, metrics, upload and export", () => {
    for (const path of ['/health', '/ready', '/metrics', '/zimage/v1/uploads/{token}', '/zimage/v1/exports/{token}/{file}'])
      assert.ok(doc.paths[path], path);
    assert.equal(doc.paths['/zimage/v1/uploads/{token}'].put.requestBody.content['application/octet-stream'].schema.type, 'string');
  });

  test('/docs is served with a self-only CSP, Swagger UI from the package, and nothing else under /docs/assets', async () => {
    const page = await fetch(`${server.url}/docs`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    const csp = page.headers.get('content-security-policy')!;
    assert.match(csp, /default-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    const html = await page.text();
    assert.doesNotMatch(html, /<script>|<style>|https?:\/\//, 'no inline scripts or styles, nothing from another origin');
    // The form is usable before docs.js has loaded: a submit then must not put the password in the URL.
    assert.doesNotMatch(html, /<input[^>]*\bname=/, 'login inputs have no name, so a native form submit sends no field');
    const bundle = await fetch(`${server.url}/docs/assets/swagger-ui-bundle.js`);
    assert.equal(bundle.status, 200);
    const installed = await readFile(join(ROOT, 'node_modules/swagger-ui-dist/swagger-ui-bundle.js'));
    assert.equal(
      createHash('sha256')
        .update(Buffer.from(await bundle.arrayBuffer()))
        .digest('hex'),
      createHash('sha256').update(installed).digest('hex'),
    );
    for (const name of ['index.html', '..%2Fpackage.json', 'swagger-ui-bundle.js.map']) {
      assert.equal((await fetch(`${server.url}/docs/assets/${name}`)).status, 404, name);
    }
  });
});

describe('/docs in headless Chromium', () => {
  let work: string;
  let server: TestServer;
  let context: BrowserContext;
  let page: Page;
  let image: { uuid: string; size: number; actualSize: number };
  let bs: string;
  let disk: string;
  const pageErrors: string[] = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is not installed (scripts/ensure-test-deps.sh installs Debian's chromium)`);
    work = await tempDir('zimage-docs-');
    await mkdir(join(work, 'fixtures'));
    await mkdir(join(work, 'storage'));
    disk = join(work, 'fixtures', 'disk.qcow2');
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
    server = await startInProcess({}, { ZIMAGE_IMPORT_FILE_ROOTS: join(work, 'fixtures') });
    await server.client.login();
    bs = (await server.client.addLocalStorage(join(work, 'storage'))).uuid;
    const added = await server.client.call('POST', '/images', {
      params: { name: 'tiny', url: `file://${disk}`, backupStorageUuids: [bs] },
    });
    assert.equal(added.status, 200, added.text);
    image = added.body.inventory;
    assert.equal(image.size, 64 * 1024 * 1024);

    context = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${server.url}/docs`);
  });

  after(async () => {
    await context?.close();
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('the page lists SyncImageSize and CalculateImageHash', async () => {
    const actions = page.locator('#operations-images-PutImagesActions');
    await actions.waitFor({ timeout: 30_000 });
    const text = await actions.locator('.opblock-summary').innerText();
    assert.match(text, /SyncImageSize/);
    assert.match(text, /CalculateImageHash/);
    assert.match(text, /\/zstack\/v1\/images\/\{uuid\}\/actions/);
  });

  test('the login form sends the SHA-512 hex of the password (subtle crypto and the fallback agree with node)', async () => {
    const digests = await page.evaluate(async () => {
      const z = (window as any).zimageDocs;
      const text = 'pässword — ' + 'x'.repeat(200);
      return {
        subtle: await z.sha512Hex(text),
        fallback: z.sha512Fallback(new TextEncoder().encode(text)),
        empty: z.sha512Fallback(new Uint8Array()),
      };
    });
    const expected = createHash('sha512')
      .update('pässword — ' + 'x'.repeat(200))
      .digest('hex');
    assert.equal(digests.subtle, expected);
    assert.equal(digests.fallback, expected);
    assert.equal(digests.empty, createHash('sha512').update('').digest('hex'));
  });

  test('a wrong password is refused in the page', async () => {
    await page.fill('#zi-account', 'admin');
    await page.fill('#zi-password', 'not the password');
    await page.click('#zi-login-button');
    await page.locator('#zi-status.zi-error').waitFor();
    assert.match(await page.locator('#zi-status').innerText(), /Login refused: ID\.1000/);
  });

  // One story in one page: the Try-it calls need the form's login, the log-out needs its session.
  test('logs in through the form, runs SyncImageSize and CalculateImageHash with "Try it out", logs out', async (t) => {
    let session = '';

    await t.test('logs in through the form and runs SyncImageSize with "Try it out"', async () => {
      await page.fill('#zi-account', 'admin');
      await page.fill('#zi-password', 'password');
      await page.click('#zi-login-button');
      await page.locator('#zi-status.zi-ok').waitFor();
      assert.equal(await page.inputValue('#zi-password'), '', 'the password field is cleared');
      session = /OAuth ([0-9a-f]{32})/.exec(await page.locator('#zi-status').innerText())![1]!;

      const op = page.locator('#operations-images-PutImagesActions');
      await op.locator('.opblock-summary').click();
      await op.locator('tr[data-param-name="uuid"] input').fill(image.uuid);
      assert.deepEqual(JSON.parse(await op.locator('textarea.body-param__text').inputValue()), { syncImageSize: {} });
      await op.locator('button.execute').click();
      const status = op.locator('.live-responses-table tr.response .response-col_status').first();
      await status.waitFor({ timeout: 30_000 });
      assert.match(await status.innerText(), /^\s*200\s*$/, await op.locator('.live-responses-table').innerText());
      const body = JSON.parse(await op.locator('.live-responses-table .response-col_description pre.microlight').first().innerText());
      assert.equal(body.inventory.uuid, image.uuid);
      assert.equal(body.inventory.size, 64 * 1024 * 1024);
      assert.equal(body.inventory.actualSize, image.actualSize);

      if (process.env.ZIMAGE_DOCS_SCREENSHOT) {
        // From the request body (the example chosen: SyncImageSize) down to the answer, below the logged-in bar.
        await page.setViewportSize({ width: 1280, height: 1650 });
        const top = await op.locator('.opblock-section-request-body').evaluate((el) => el.getBoundingClientRect().top + window.scrollY);
        const bar = await page.locator('.zi-bar').evaluate((el) => el.getBoundingClientRect().height);
        await page.evaluate((y) => window.scrollTo(0, y), top - bar);
        await page.screenshot({ path: process.env.ZIMAGE_DOCS_SCREENSHOT });
        await page.setViewportSize({ width: 1280, height: 900 });
      }
    });

    await t.test('runs CalculateImageHash with the example chosen and edited in the page', async () => {
      const op = page.locator('#operations-images-PutImagesActions');
      await op.locator('.opblock-section-request-body select.examples-select-element').selectOption({ label: 'CalculateImageHash' });
      const editor = op.locator('textarea.body-param__text');
      await editor.fill(JSON.stringify({ calculateImageHash: { backupStorageUuid: bs, algorithm: 'sha256' } }));
      await op.locator('button.execute').click();
      const selector = '#operations-images-PutImagesActions .live-responses-table .response-col_description pre.microlight';
      // The previous answer (an MD5) stays until this one (a SHA-256) replaces it.
      await page.waitForFunction((sel) => /"md5Sum": "[0-9a-f]{64}"/.test(document.querySelector(sel)?.textContent ?? ''), selector, {
        timeout: 30_000,
      });
      const body = JSON.parse(await page.locator(selector).first().innerText());
      assert.equal(body.inventory.md5Sum, await opensslDigest(disk, 'sha256'));
    });

    await t.test('the log-out button ends the session on the server', async () => {
      const valid = async () => (await server.client.raw('GET', `/accounts/sessions/${session}/valid`)).body.valid as boolean;
      assert.equal(await valid(), true);
      await page.click('#zi-logout');
      await page.locator('#zi-status:not(.zi-ok)').waitFor();
      await waitFor('the session to end', async () => !(await valid()));
    });
  });

  test('the page ran without script errors or Content-Security-Policy violations', () => {
    // The wrong-password login above answers 503: Chromium logs that failed fetch as a console error.
    assert.deepEqual(
      pageErrors.filter((e) => !/status of 503/.test(e)),
      [],
    );
  });
});
