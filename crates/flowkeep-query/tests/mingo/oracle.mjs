// Oracle for flowkeep-query's differential test (crates/flowkeep-query/tests/differential.rs).
//
// Reads one JSON batch from stdin: {"cases": [case, ...]} where a case is one of
//   {"kind": "find", "docs": [...], "filter": {...}, "sort": {...}|null, "skip": n, "limit": n|null,
//    "projection": {...}|null}
//   {"kind": "update", "doc": {...}, "update": {...}, "query": {...}|null}
//   {"kind": "aggregate", "docs": [...], "pipeline": [...]}
// and writes one JSON array to stdout, one entry per case: {"ok": result} or {"error": message}.
// The result of a find is {"docs": [...], "matched": [indexes of the documents the filter matches]};
// of an update, the updated document; of an aggregate, the output documents.
//
// Wire conventions of OpenIAP that the Rust engine follows, mirrored here:
//   * a string in the canonical form YYYY-MM-DDTHH:MM:SS.mmmZ is a date: it becomes a JS Date on the
//     way in (documents and queries) and a Date becomes that string again on the way out;
//   * in queries (not documents), a string "__REGEXP /pattern/flags" is a regular expression.
import { aggregate, find, Query, update } from "mingo";

const DATE_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const REGEXP_RE = /^__REGEXP \/(.*)\/([a-z]*)$/s;

function toJs(v, inQuery) {
  if (typeof v === "string") {
    if (DATE_RE.test(v)) {
      const d = new Date(v);
      if (!Number.isNaN(d.getTime())) return d;
    }
    if (inQuery) {
      const m = REGEXP_RE.exec(v);
      if (m) return new RegExp(m[1], m[2]);
    }
    return v;
  }
  if (Array.isArray(v)) return v.map((x) => toJs(x, inQuery));
  if (v !== null && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = toJs(x, inQuery);
    return out;
  }
  return v;
}

function fromJs(v) {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? { $invalidDate: true } : v.toISOString();
  if (v instanceof RegExp) return `__REGEXP /${v.source}/${v.flags}`;
  if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : fromJs(x)));
  if (v !== null && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      if (x !== undefined) out[k] = fromJs(x);
    }
    return out;
  }
  if (typeof v === "number" && !Number.isFinite(v)) {
    return { $nonFinite: String(v) };
  }
  return v;
}

// Server-side JavaScript is never run, mirroring the Rust engine.
const OPTIONS = { scriptEnabled: false };

function runCase(c) {
  switch (c.kind) {
    case "find": {
      const docs = toJs(c.docs, false);
      const filter = toJs(c.filter, true);
      const projection = c.projection == null ? undefined : toJs(c.projection, true);
      // Which documents the filter alone matches, by position: lets the test name the one document
      // on which the two engines disagree.
      const query = new Query(filter, OPTIONS);
      const matched = [];
      docs.forEach((d, i) => {
        if (query.test(d)) matched.push(i);
      });
      let cursor = find(docs, filter, projection, OPTIONS);
      if (c.sort != null) cursor = cursor.sort(toJs(c.sort, true));
      if (c.skip) cursor = cursor.skip(c.skip);
      if (c.limit != null) cursor = cursor.limit(c.limit);
      return { docs: cursor.all(), matched };
    }
    case "update": {
      const doc = toJs(c.doc, false);
      const modifier = toJs(c.update, true);
      const condition = c.query == null ? undefined : toJs(c.query, true);
      update(doc, modifier, undefined, condition, { cloneMode: "deep", queryOptions: OPTIONS });
      return doc;
    }
    case "aggregate": {
      const docs = toJs(c.docs, false);
      return aggregate(docs, toJs(c.pipeline, true), OPTIONS);
    }
    default:
      throw new Error(`unknown case kind: ${c.kind}`);
  }
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const batch = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const results = batch.cases.map((c) => {
  try {
    return { ok: fromJs(runCase(c)) };
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(results));
