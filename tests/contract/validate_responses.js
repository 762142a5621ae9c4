#!/usr/bin/env node
// Holds every response the integration tests logged (itest.c, with
// NERVED_RESPONSE_LOG set) against the OpenAPI document the daemon serves:
// the path and method must be documented (or the answer is the documented
// 405/404 for them), the status must be one the operation lists, the
// content type one that status lists, the headers it requires present, and
// a JSON body must match its schema. Anything else fails the run.
//
//   node validate_responses.js OPENAPI.json LOGDIR
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const Ajv = require('ajv');

const [docFile, logDir] = process.argv.slice(2);
if (!docFile || !logDir) {
    console.error('usage: validate_responses.js OPENAPI.json LOGDIR');
    process.exit(2);
}
const doc = JSON.parse(fs.readFileSync(docFile, 'utf8'));
const ajv = new Ajv({strict: false, allErrors: true});
ajv.addSchema(doc, 'doc');

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

function deref(obj) {
    while (obj && obj.$ref) {
        const parts = obj.$ref.replace(/^#\//, '').split('/')
            .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
        obj = parts.reduce((o, k) => o[k], doc);
    }
    return obj;
}

// Documented paths as matchers; literal segments outrank parameters, as in
// the daemon's table (/v2/models/stats before /v2/models/{net}).
const matchers = Object.keys(doc.paths).map((p) => {
    const segs = p.split('/');
    return {
        template: p,
        params: segs.filter((s) => s.startsWith('{')).length,
        re: new RegExp('^' + segs.map((s) => (s.startsWith('{') ? '[^/]+'
            : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/') + '$'),
    };
}).sort((a, b) => a.params - b.params);

function findPath(p) {
    const m = matchers.find((x) => x.re.test(p));
    return m ? m.template : null;
}

const compiled = new Map();
function validator(pointer) {
    if (!compiled.has(pointer))
        compiled.set(pointer, ajv.getSchema('doc#' + pointer));
    return compiled.get(pointer);
}

function esc(s) { return s.replace(/~/g, '~0').replace(/\//g, '~1'); }

// The response object, and its JSON pointer, an operation documents for a
// status, with OpenAPI's fallbacks (4XX, default).
function responseFor(template, method, status) {
    const op = doc.paths[template][method];
    const keys = [String(status), String(status)[0] + 'XX', 'default'];
    for (const k of keys)
        if (op.responses[k]) {
            let r = op.responses[k];
            let ptr = `/paths/${esc(template)}/${method}/responses/${k}`;
            while (r.$ref) {
                ptr = r.$ref.replace(/^#/, '');
                r = deref(r);
            }
            return {r, ptr};
        }
    return null;
}

// A body the client asked to come compressed (Accept-Encoding) is held
// against the schema as what it decompresses to.
function decoded(body) {
    if (body.length > 2 && body[0] === 0x1f && body[1] === 0x8b)
        return zlib.gunzipSync(body);
    if (body.length > 2 && body[0] === 0x78) {
        try { return zlib.inflateSync(body); } catch (e) { return body; }
    }
    return body;
}

const failures = [];
const seen = new Set();
let count = 0;

function check(rec) {
    const url = rec.path.split('?')[0];
    const method = rec.method.toLowerCase();
    const where = `${rec.method} ${rec.path} -> ${rec.status}`;
    const fail = (msg) => failures.push(`${where}: ${msg}`);
    const body = Buffer.from(rec.body, 'base64');
    const template = findPath(url);
    const v2 = /^\/v2(\/|$)/.test(url);
    // What no operation can list: a path that does not exist, or a method
    // a path lacks. The daemon answers them before routing, with the
    // shared responses: 401 without a key (it tells nothing then), else
    // 404 for the path, or 405 for the method (which every operation of
    // the path documents).
    const shared = (name) => {
        const key = (v2 ? 'V2' : '') + name;
        if (!doc.components.responses[key])
            return null;
        return {r: doc.components.responses[key],
                ptr: `/components/responses/${key}`};
    };
    const item = template ? doc.paths[template] : null;
    let opMethod = method;
    const isHead = method === 'head';
    if (item && !item[opMethod] && isHead && item.get)
        opMethod = 'get';
    let found;
    if (!item || !item[opMethod]) {
        if (rec.status === 401)
            found = shared('Unauthorized');
        else if (!item && rec.status === 404)
            found = shared('NotFound');
        else if (item && rec.status === 405)
            found = responseFor(template, METHODS.filter((m) => item[m])[0],
                                405);
        if (!found)
            return fail(item ? `method not documented for ${template}`
                             : 'undocumented path');
    } else {
        found = responseFor(template, opMethod, rec.status);
        if (!found)
            return fail(`status not documented for ${opMethod.toUpperCase()} `
                        + template);
    }
    seen.add(`${rec.method} ${template} ${rec.status}`);
    const {r, ptr} = found;
    for (const [name, h] of Object.entries(r.headers || {})) {
        const have = {'retry-after': rec.retry_after, allow: rec.allow,
                      'www-authenticate': rec.www_authenticate}[name.toLowerCase()];
        if (deref(h).required && have !== undefined && !have)
            fail(`header ${name} missing`);
    }
    if (isHead) {
        if (body.length)
            fail('HEAD answered with a body');
        return;
    }
    const content = r.content || {};
    const ct = (rec.content_type || '').split(';')[0].trim().toLowerCase();
    if (!Object.keys(content).length) {
        if (body.length)
            fail(`a body where the document lists none (${ct})`);
        return;
    }
    if (!content[ct])
        return fail(`content type '${rec.content_type}' not documented `
                    + `(documented: ${Object.keys(content).join(', ')})`);
    // The binary tensor extension: a JSON header of header_length bytes,
    // then the tensors' bytes; the header is held to the JSON schema.
    let text = decoded(body);
    let schemaCt = ct;
    if (ct === 'application/octet-stream' && rec.header_length !== undefined) {
        if (!content['application/json'])
            return fail('a binary answer where no JSON header is documented');
        text = text.subarray(0, rec.header_length);
        schemaCt = 'application/json';
    } else if (ct !== 'application/json' || !content[ct].schema) {
        return;
    }
    let json;
    try { json = JSON.parse(text.toString('utf8')); } catch (e) {
        return fail('body is not JSON');
    }
    const v = validator(`${ptr}/content/${esc(schemaCt)}/schema`);
    if (!v)
        return fail(`no schema compiled at ${ptr}`);
    if (!v(json))
        fail(`${ajv.errorsText(v.errors)}; body: `
             + text.toString('utf8').slice(0, 300));
}

const files = fs.readdirSync(logDir).filter((f) => f.endsWith('.jsonl'));
for (const f of files)
    for (const line of fs.readFileSync(path.join(logDir, f), 'utf8').split('\n')) {
        if (!line)
            continue;
        count++;
        check(JSON.parse(line));
    }

if (count === 0) {
    console.error('no responses were logged: nothing was checked');
    process.exit(1);
}
// Coverage, to read: operations no logged test answered with success.
const unexercised = [];
for (const [p, item] of Object.entries(doc.paths))
    for (const m of METHODS.filter((x) => item[x] && x !== 'head'))
        if (![...seen].some((k) => k.startsWith(`${m.toUpperCase()} ${p} 2`)))
            unexercised.push(`${m.toUpperCase()} ${p}`);
if (unexercised.length)
    console.log(`no success logged for: ${unexercised.join('; ')}`);
const unique = [...new Set(failures)];
for (const f of unique.slice(0, 200))
    console.error('UNDOCUMENTED ' + f);
console.log(`${count} responses checked (${seen.size} distinct method, path `
            + `and status), ${failures.length} not as documented`);
process.exit(unique.length ? 1 : 0);
