// The Tapedeck guest SDK for JavaScript: write a strategy (or projector) as a class, default-
// export it, build it with `tapedeck build DIR` (componentize-js, no WASI: the module imports
// nothing).
//
//     import { Strategy, QUOTE, BUY } from "tapedeck";
//     export default class Mine extends Strategy {
//       static CONFIG = { qty: 1.0 };            // defaults; init's JSON overrides them
//       constructor(cfg) { super(); this.qty = cfg.qty; }
//       onEvent(ev, ctx) { if (ev.kind === QUOTE) ctx.market(ev, BUY, this.qty); }
//     }
//
// State is the object's own fields: `snapshot()` writes them as JSON, `restore` assigns them
// to a new object without running the constructor. Inside the sandbox there is no console,
// clock, file or randomness: log with `ctx.log(...)` and `ctx.metric(...)`, outputs tagged with
// the event's seq like orders.
//
// The batch codec below reads and writes the packed layouts of `guest-sdk/src/codec` (layout
// v1) exactly; the host checks every output batch with the Rust codec. Integers (mantissas,
// seqs, ids) are JS numbers, exact up to 2^53; `timeNs` is a BigInt.

/** Version of the host/guest contract (the Rust SDK's `ABI_VERSION`). */
export const ABI_VERSION = 2;
export const LAYOUT_VERSION = 1;

// Event kinds.
export const QUOTE = 1, TRADE = 2, BOOK_SNAPSHOT = 3, BOOK_DELTA = 4, ORDER_SUBMITTED = 5,
  ORDER_ACKED = 6, ORDER_REJECTED = 7, ORDER_CANCELLED = 8, FILL = 9, POSITION = 10,
  BALANCE = 11, RISK_DECISION = 12, GUARDRAIL_TRANSITION = 13, FUNDING = 14, CUSTOM = 15;
// Sides, order types, times in force, log levels: the wire bytes.
export const BUY = 1, SELL = 2;
export const LIMIT = 1, MARKET = 2;
export const GTC = 1, IOC = 2, FOK = 3, POST_ONLY = 4;
export const TRACE = 0, DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4;

const POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
  1e15, 1e16, 1e17, 1e18];
const TWO32 = 4294967296;

/** 10^scale as a double, as the Rust codec computes it. */
export function pow10(scale) {
  return scale < 19 ? POW10[scale] : Math.pow(10, scale);
}

/** `value * 10^scale` rounded half away from zero (Rust's `f64::round`). */
export function toMantissa(value, scale) {
  const x = value * pow10(scale);
  if (x !== x) return 0;
  let t = Math.trunc(x);
  if (Math.abs(x - t) >= 0.5) t += x > 0 ? 1 : -1;
  return t;
}

/** One event as a guest sees it: header fields, `kind`, and `payload` (a plain object);
 * `timeNs` (a BigInt) is read from the batch when asked for. */
export class Event {
  constructor(kind, pxScale, qtyScale, stream, instrument, seq, view, offset, payload) {
    this.kind = kind;
    this.pxScale = pxScale;
    this.qtyScale = qtyScale;
    this.stream = stream;
    this.instrument = instrument;
    this.seq = seq;
    this.view = view;
    this.offset = offset;
    this.payload = payload;
  }
  /** Event time, ns since the Unix epoch. */
  get timeNs() { return this.view.getBigInt64(this.offset + 24, true); }
  /** A price mantissa of this event as a double. */
  px(m) { return m / POW10[this.pxScale]; }
  /** A quantity mantissa of this event as a double. */
  qty(m) { return m / POW10[this.qtyScale]; }
}

export class CodecError extends Error {}

function i64(v, o) {
  return v.getUint32(o, true) + v.getInt32(o + 4, true) * TWO32;
}
function u64(v, o) {
  return v.getUint32(o, true) + v.getUint32(o + 4, true) * TWO32;
}

class Reader {
  constructor(bytes, view, pos, end) {
    this.bytes = bytes; this.v = view; this.pos = pos; this.end = end;
  }
  need(n) {
    const p = this.pos;
    if (p + n > this.end) throw new CodecError(`record truncated at offset ${p}`);
    this.pos = p + n;
    return p;
  }
  u8() { return this.v.getUint8(this.need(1)); }
  u32() { return this.v.getUint32(this.need(4), true); }
  u64() { return u64(this.v, this.need(8)); }
  i64() { return i64(this.v, this.need(8)); }
  /** A decimal that is not a price or a quantity. */
  dec() { const mantissa = this.i64(); return { mantissa, scale: this.u8() }; }
  raw() { const n = this.u32(); const p = this.need(n); return this.bytes.subarray(p, p + n); }
  str() { return utf8Decode(this.raw()); }
  levels() {
    const n = this.u32(), out = [];
    for (let i = 0; i < n; i++) out.push([this.i64(), this.i64()]);
    return out;
  }
  bool() {
    const b = this.u8();
    if (b > 1) throw new CodecError(`invalid is_final value ${b}`);
    return b === 1;
  }
}

function decodePayload(kind, r) {
  switch (kind) {
    case QUOTE: return { bidPx: r.i64(), bidQty: r.i64(), askPx: r.i64(), askQty: r.i64() };
    case TRADE: return { price: r.i64(), qty: r.i64(), tradeId: r.u64(), aggressor: r.u8() };
    case BOOK_SNAPSHOT: return { updateId: r.u64(), bids: r.levels(), asks: r.levels() };
    case BOOK_DELTA: return {
      firstUpdateId: r.u64(), finalUpdateId: r.u64(), prevFinalUpdateId: r.u64(),
      bids: r.levels(), asks: r.levels(),
    };
    case ORDER_SUBMITTED: return {
      clientOrderId: r.u64(), side: r.u8(), orderType: r.u8(), tif: r.u8(), price: r.i64(),
      qty: r.i64(),
    };
    case ORDER_ACKED: return { clientOrderId: r.u64(), venueOrderId: r.u64() };
    case ORDER_REJECTED: return { clientOrderId: r.u64(), reason: r.str() };
    case ORDER_CANCELLED: return { clientOrderId: r.u64() };
    case FILL: return {
      clientOrderId: r.u64(), tradeId: r.u64(), side: r.u8(), liquidity: r.u8(),
      isFinal: r.bool(), price: r.i64(), qty: r.i64(), fee: r.dec(),
    };
    case POSITION: return { qty: r.i64(), avgPrice: r.i64(), realizedPnl: r.dec() };
    case BALANCE: return { total: r.dec(), free: r.dec(), locked: r.dec() };
    case RISK_DECISION: return { clientOrderId: r.u64(), verdict: r.u8(), reasonCode: r.str() };
    case GUARDRAIL_TRANSITION: return {
      prevMode: r.str(), nextMode: r.str(), triggerMetric: r.str(), value: r.dec(),
      reason: r.str(),
    };
    case FUNDING: return { rate: r.dec(), markPrice: r.i64(), payment: r.dec() };
    case CUSTOM: return { typeName: r.str(), json: r.raw() };
    default: throw new CodecError(`unknown event kind ${kind}`);
  }
}

/** Calls `f(event)` for each event of a packed batch (a Uint8Array), in order. Quotes (the
 * hot path) come in one `Event` and one payload object, refilled for each quote, as the Rust
 * SDK lends `&Event`: copy the fields you keep past the call, not the objects. */
export function forEachEvent(batch, f) {
  const v = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const end = batch.byteLength;
  if (end < 16) throw new CodecError("batch truncated: no header");
  if (batch[0] !== 0x54 || batch[1] !== 0x44 || batch[2] !== 0x45 || batch[3] !== 0x56) {
    throw new CodecError("bad batch magic");
  }
  const layout = v.getUint16(4, true);
  if (layout !== LAYOUT_VERSION) throw new CodecError(`batch layout v${layout} is not v1`);
  const count = v.getUint32(8, true);
  let pos = 16;
  const q = { bidPx: 0, bidQty: 0, askPx: 0, askQty: 0 };
  const qev = new Event(QUOTE, 0, 0, 0, 0, 0, v, 0, q);
  for (let i = 0; i < count; i++) {
    if (end - pos < 32) throw new CodecError(`batch truncated at offset ${pos}`);
    const n = v.getUint32(pos, true), kind = batch[pos + 4];
    if (n < 32 || pos + n > end) {
      throw new CodecError(`record at offset ${pos} has inconsistent length ${n}`);
    }
    if (n === 64 && kind === QUOTE) {
      q.bidPx = i64(v, pos + 32);
      q.bidQty = i64(v, pos + 40);
      q.askPx = i64(v, pos + 48);
      q.askQty = i64(v, pos + 56);
      qev.pxScale = batch[pos + 5];
      qev.qtyScale = batch[pos + 6];
      qev.stream = v.getUint32(pos + 8, true);
      qev.instrument = v.getUint32(pos + 12, true);
      qev.seq = u64(v, pos + 16);
      qev.offset = pos;
      f(qev);
    } else {
      const r = new Reader(batch, v, pos + 32, pos + n);
      const payload = decodePayload(kind, r);
      if (r.pos !== pos + n) {
        throw new CodecError(`record at offset ${pos} has inconsistent length ${n}`);
      }
      f(new Event(kind, batch[pos + 5], batch[pos + 6], v.getUint32(pos + 8, true),
        v.getUint32(pos + 12, true), u64(v, pos + 16), v, pos, payload));
    }
    pos += n;
  }
  if (pos !== end) throw new CodecError(`batch header says ${count} records, it holds more`);
}

function utf8Encode(s) {
  // TextEncoder is there in the engine; this keeps the SDK free of any global.
  const out = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.codePointAt(i);
    if (c > 0xffff) i++;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else {
      out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63),
        0x80 | (c & 63));
    }
  }
  return out;
}

function utf8Decode(b) {
  let s = "";
  for (let i = 0; i < b.length;) {
    const c = b[i];
    let cp, n;
    if (c < 0x80) { cp = c; n = 1; }
    else if (c < 0xe0) { cp = c & 31; n = 2; }
    else if (c < 0xf0) { cp = c & 15; n = 3; }
    else { cp = c & 7; n = 4; }
    for (let k = 1; k < n; k++) cp = (cp << 6) | (b[i + k] & 63);
    s += String.fromCodePoint(cp);
    i += n;
  }
  return s;
}

/** Builds an output batch: orders, cancels, logs and metrics, each with its cause seq. */
export class OutputWriter {
  constructor() {
    this.buf = new Uint8Array(4096);
    this.v = new DataView(this.buf.buffer);
    this.start();
  }
  start() {
    this.len = 16;
    this.count = 0;
  }
  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
    this.v = new DataView(b.buffer);
  }
  u64(o, x) {
    this.v.setUint32(o, x % TWO32, true);
    this.v.setUint32(o + 4, Math.floor(x / TWO32), true);
  }
  i64(o, x) {
    const lo = ((x % TWO32) + TWO32) % TWO32;
    this.v.setUint32(o, lo, true);
    this.v.setInt32(o + 4, (x - lo) / TWO32, true);
  }
  head(len, kind, causeSeq) {
    this.reserve(len);
    const o = this.len;
    this.v.setUint32(o, len, true);
    this.buf[o + 4] = kind; this.buf[o + 5] = 0; this.buf[o + 6] = 0; this.buf[o + 7] = 0;
    this.u64(o + 8, causeSeq);
    this.len += len;
    this.count++;
    return o + 16;
  }
  newOrder(causeSeq, instrument, clientOrderId, side, orderType, tif, pxScale, qtyScale, price,
    qty) {
    const o = this.head(49, 1, causeSeq);
    this.v.setUint32(o, instrument, true);
    this.u64(o + 4, clientOrderId);
    const b = this.buf;
    b[o + 12] = side; b[o + 13] = orderType; b[o + 14] = tif; b[o + 15] = pxScale;
    b[o + 16] = qtyScale;
    this.i64(o + 17, price);
    this.i64(o + 25, qty);
  }
  cancel(causeSeq, instrument, clientOrderId) {
    const o = this.head(28, 2, causeSeq);
    this.v.setUint32(o, instrument, true);
    this.u64(o + 4, clientOrderId);
  }
  log(causeSeq, level, message) {
    const m = utf8Encode(String(message));
    const o = this.head(21 + m.length, 3, causeSeq);
    this.buf[o] = level;
    this.v.setUint32(o + 1, m.length, true);
    this.buf.set(m, o + 5);
  }
  metric(causeSeq, name, value) {
    const m = utf8Encode(String(name));
    const o = this.head(28 + m.length, 4, causeSeq);
    this.v.setUint32(o, m.length, true);
    this.buf.set(m, o + 4);
    this.v.setFloat64(o + 4 + m.length, value, true);
  }
  /** The packed batch (a copy); the writer starts over empty. */
  finish() {
    const b = this.buf;
    b[0] = 0x54; b[1] = 0x44; b[2] = 0x4f; b[3] = 0x55;
    this.v.setUint16(4, LAYOUT_VERSION, true);
    this.v.setUint16(6, 0, true);
    this.v.setUint32(8, this.count, true);
    this.v.setUint32(12, 0, true);
    const out = b.slice(0, this.len);
    this.start();
    return out;
  }
}

/** The stream's instrument table: id -> symbol. */
export class Instruments {
  constructor(pairs = []) {
    this.byId = new Map(pairs);
  }
  symbol(id) { return this.byId.get(id); }
  /** The symbol of `id`, or the id in decimal when the table has none. */
  name(id) { const s = this.byId.get(id); return s === undefined ? String(id) : s; }
}

/** Handed to `onEvent`: outputs carry the seq of the event being handled; client order ids
 * are `seq * 256 + n` for the n-th order of the event. */
export class Ctx {
  constructor(out, instruments) {
    this.out = out;
    this.instruments = instruments;
    this.causeSeq = 0;
    this.orders = 0;
  }
  symbol(id) { return this.instruments.symbol(id); }
  name(id) { return this.instruments.name(id); }
  /** An order exactly as given (mantissas at their scales); returns its client order id. */
  order(instrument, side, orderType, tif, price, qty, pxScale, qtyScale) {
    const coid = this.causeSeq * 256 + (this.orders & 0xff);
    this.orders++;
    this.out.newOrder(this.causeSeq, instrument, coid, side, orderType, tif, pxScale, qtyScale,
      price, qty);
    return coid;
  }
  /** A market order (IOC) for `qty`, converted at the event's quantity scale. */
  market(ev, side, qty) {
    return this.order(ev.instrument, side, MARKET, IOC, 0, toMantissa(qty, ev.qtyScale),
      ev.pxScale, ev.qtyScale);
  }
  /** A good-till-cancelled limit order at the event's scales. */
  limit(ev, side, price, qty) {
    return this.order(ev.instrument, side, LIMIT, GTC, toMantissa(price, ev.pxScale),
      toMantissa(qty, ev.qtyScale), ev.pxScale, ev.qtyScale);
  }
  cancel(instrument, clientOrderId) { this.out.cancel(this.causeSeq, instrument, clientOrderId); }
  /** A log line (level TRACE..ERROR): an output record, not a console. */
  log(level, message) { this.out.log(this.causeSeq, level, message); }
  metric(name, value) { this.out.metric(this.causeSeq, name, value); }
}

/** Handed to a projector's `onEvent`: it emits nothing; what it computes goes in its state. */
export class ProjectorCtx {
  constructor(instruments) {
    this.instruments = instruments;
    this.causeSeq = 0;
  }
  symbol(id) { return this.instruments.symbol(id); }
  name(id) { return this.instruments.name(id); }
}

const encoder = (s) => Uint8Array.from(utf8Encode(s));

/** Base class of a strategy: set `static CONFIG` (the defaults), take the parsed config in the
 * constructor (throw to refuse it), define `onEvent(ev, ctx)`. */
export class Strategy {
  onEvent(_ev, _ctx) { throw new Error("a strategy defines onEvent(ev, ctx)"); }
  /** The whole state as bytes: JSON of the own fields. */
  snapshot() { return encoder(JSON.stringify(this)); }
  /** A new instance from `snapshot()` bytes, without running the constructor. */
  static restore(bytes) {
    return Object.assign(Object.create(this.prototype), JSON.parse(utf8Decode(bytes)));
  }
}

/** Base class of a projector; `state()` (a JSON value, serialized with sorted keys) is what
 * is diffed against stored snapshots. */
export class Projector extends Strategy {
  state() { return this; }
}

/** Canonical JSON: keys sorted at every level, no whitespace. */
export function canonicalJson(value) {
  const sort = (x) => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === "object") {
      const o = {};
      for (const k of Object.keys(x).sort()) o[k] = sort(x[k]);
      return o;
    }
    return x;
  };
  return JSON.stringify(sort(value));
}

/** A module config: the JSON object in `text` over the type's `CONFIG`; unknown keys refused. */
export function parseConfig(text, defaults) {
  const cfg = { ...defaults };
  if (text.trim() === "") return cfg;
  let given;
  try {
    given = JSON.parse(text);
  } catch (e) {
    throw `invalid module config: ${e.message}`;
  }
  if (given === null || typeof given !== "object" || Array.isArray(given)) {
    throw "invalid module config: expected a JSON object";
  }
  for (const k of Object.keys(given)) {
    if (!(k in cfg)) {
      const known = Object.keys(defaults).map((x) => `\`${x}\``).join(", ");
      throw `invalid module config: unknown field \`${k}\`, expected one of ${known}`;
    }
    cfg[k] = given[k];
  }
  return cfg;
}

/** Runs a strategy over packed batches: what the export glue wraps and what native tests
 * (node) call. */
export class StrategyDriver {
  constructor(guest) {
    this.guest = guest;
    this.out = new OutputWriter();
    this.ctx = new Ctx(this.out, new Instruments());
  }
  static init(Type, config) {
    let guest;
    try {
      guest = new Type(parseConfig(config, Type.CONFIG || {}));
    } catch (e) {
      throw typeof e === "string" ? e : (e && e.message) || String(e);
    }
    return new this(guest);
  }
  setInstruments(pairs) { this.ctx.instruments = new Instruments(pairs); }
  onEvents(batch) {
    const ctx = this.ctx, guest = this.guest;
    forEachEvent(batch, (ev) => {
      ctx.causeSeq = ev.seq;
      ctx.orders = 0;
      guest.onEvent(ev, ctx);
    });
    return this.out.finish();
  }
  snapshot() { return this.guest.snapshot(); }
}

export class ProjectorDriver extends StrategyDriver {
  constructor(guest) {
    super(guest);
    this.ctx = new ProjectorCtx(new Instruments());
  }
  onEvents(batch) {
    const ctx = this.ctx, guest = this.guest;
    forEachEvent(batch, (ev) => {
      ctx.causeSeq = ev.seq;
      guest.onEvent(ev, ctx);
    });
    return this.out.finish();
  }
  state() { return encoder(canonicalJson(this.guest.state())); }
}

/** The world's exports for a guest class: what the module built by `tapedeck build` exports
 * (its generated entry does `export const { init, ... } = exportGuest(Type, ...)`). */
export function exportGuest(Type, { name, version, world }) {
  const projector = world === "projector";
  if (projector !== (Type.prototype instanceof Projector)) {
    throw new Error(`${Type.name} must extend ${projector ? "Projector" : "Strategy"} for the ${world} world`);
  }
  const Driver = projector ? ProjectorDriver : StrategyDriver;
  let driver = null;
  const get = () => {
    if (driver === null) throw new Error("tapedeck: the host called the module before `init`");
    return driver;
  };
  const exports = {
    init(config) { driver = Driver.init(Type, config); },
    metadata() { return { name, version, abiVersion: ABI_VERSION }; },
    setInstruments(table) { get().setInstruments(table.map((i) => [i.id, i.symbol])); },
    onEvents(batch) { return get().onEvents(batch); },
    snapshot() { return get().snapshot(); },
    restore(bytes) {
      let guest;
      try {
        guest = Type.restore(bytes);
      } catch (e) {
        throw `snapshot does not restore: ${(e && e.message) || e}`;
      }
      driver = new Driver(guest);
    },
  };
  if (projector) exports.state = () => get().state();
  return exports;
}

// Native tests of a guest under node: pack quote batches as the host does, read outputs back.

/** One stream's quotes on `instrument`, one per mid (one tick wide), seqs from `firstSeq`. */
export function quoteBatch(instrument, mids, firstSeq = 1, pxScale = 2, qtyScale = 3) {
  const b = new Uint8Array(16 + 64 * mids.length), v = new DataView(b.buffer);
  b.set([0x54, 0x44, 0x45, 0x56]);
  v.setUint16(4, LAYOUT_VERSION, true);
  v.setUint32(8, mids.length, true);
  const w = new OutputWriter();
  mids.forEach((mid, i) => {
    const o = 16 + 64 * i, m = Math.round(mid * POW10[pxScale]), seq = firstSeq + i;
    v.setUint32(o, 64, true);
    b[o + 4] = QUOTE; b[o + 5] = pxScale; b[o + 6] = qtyScale;
    v.setUint32(o + 8, 1, true);
    v.setUint32(o + 12, instrument, true);
    w.v = v;
    w.u64(o + 16, seq);
    w.i64(o + 24, seq * 1e6);
    w.i64(o + 32, m - 1);
    w.i64(o + 40, POW10[qtyScale]);
    w.i64(o + 48, m + 1);
    w.i64(o + 56, POW10[qtyScale]);
  });
  return b;
}

/** The records of an output batch: `{ kind, causeSeq, body }` (kind 1 order, 2 cancel, 3 log,
 * 4 metric); an order's side is `body[12]`, a log's text `utf8(body.subarray(5))`. */
export function decodeOutputs(batch) {
  const v = new DataView(batch.buffer, batch.byteOffset, batch.byteLength), out = [];
  let pos = 16;
  for (let i = 0; i < v.getUint32(8, true); i++) {
    const n = v.getUint32(pos, true);
    out.push({ kind: batch[pos + 4], causeSeq: u64(v, pos + 8), body: batch.subarray(pos + 16, pos + n) });
    pos += n;
  }
  return out;
}

export { utf8Decode as utf8 };
