// A small client of nerved written against the types openapi-typescript
// generates from api/openapi.json (nerved.d.ts, made by the test command).
// It compiles only if the document names what a client needs (a created
// network's id, a session's batch, a step's outputs and step count, an
// error's code); run against a daemon it checks the answers have them.
//
//   node main.js http://127.0.0.1:PORT
import type { components, operations, paths } from "./nerved";

// Node's globals, without @types/node: what this program uses of them.
declare const process: { argv: string[]; exit(code: number): never };

type Schemas = components["schemas"];
type Json<Op extends keyof operations, Status extends keyof operations[Op]["responses"]> =
    operations[Op]["responses"][Status] extends { content: { "application/json": infer T } }
        ? T : never;
type GraphDefinition = Schemas["GraphDefinition"];
type StepRequest = Schemas["StepRequest"];
type Created = Json<"network_create", 201>;
type SessionCreated = Json<"session_create", 201>;
type Step = Json<"session_forward", 200>;
type Failure = Schemas["Error"];
type Path = keyof paths;

const base = process.argv[2];
if (!base) {
    console.error("usage: node main.js BASE_URL");
    process.exit(2);
}

async function call<T>(method: string, path: Path, params: Record<string, string>,
                       body: unknown, expect: number): Promise<T> {
    let url: string = path;
    for (const [k, v] of Object.entries(params))
        url = url.replace(`{${k}}`, encodeURIComponent(v));
    const res = await fetch(base + url, {
        method,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== expect)
        throw new Error(`${method} ${url}: ${res.status}, expected ${expect}: ${text}`);
    return JSON.parse(text) as T;
}

function check(cond: boolean, what: string): void {
    if (!cond)
        throw new Error(what);
}

async function main(): Promise<void> {
    const def: GraphDefinition = {
        name: "client-rnn",
        nodes: [
            { name: "x", type: "Input", shape: 2 },
            { name: "r", type: "VanillaRNN", num_unit: 3 },
            { name: "o", type: "Dense", num_unit: 1 },
        ],
        edges: ["x >> r >> o"],
    };
    const net: Created = await call("POST", "/v1/networks", {}, def, 201);
    check(typeof net.id === "string" && net.exits.includes("o"), "created network");
    const s: SessionCreated = await call("POST", "/v1/networks/{net}/sessions",
                                         { net: net.id }, { batch: 2 }, 201);
    check(s.batch === 2 && s.steps === 0, "new session");
    const req: StepRequest = { inputs: { x: [[1, 0], [0, 1]] } };
    let last: Step | undefined;
    for (let i = 0; i < 3; i++)
        last = await call("POST", "/v1/networks/{net}/sessions/{sid}/forward",
                          { net: net.id, sid: s.id }, req, 200);
    check(last !== undefined && last.step === 3, "the step count after three steps");
    const o = last!.outputs["o"];
    check(Array.isArray(o) && o.length === 2, "outputs.o has the batch's two rows");
    const missing: Failure = await call("GET", "/v1/networks/{net}/sessions/{sid}",
                                        { net: net.id, sid: "nope" }, undefined, 404);
    check(missing.error.code === "not_found", "a missing session's error code");
    await call("DELETE", "/v1/networks/{net}", { net: net.id }, undefined, 200);
    console.log("client: network, session, three steps and an error, as typed");
}

main().catch((e: Error) => {
    console.error(`client: ${e.message}`);
    process.exit(1);
});
