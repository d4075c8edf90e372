// Conversions between JS values and the protos' well-known types and payload bytes.

/** A JS Date (or epoch milliseconds) -> google.protobuf.Timestamp. */
export function timestamp(date) {
  const ms = date instanceof Date ? date.getTime() : Number(date);
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

/** google.protobuf.Timestamp -> Date (null when unset). */
export function toDate(ts) {
  if (!ts) return null;
  return new Date(Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6));
}

/** Seconds -> google.protobuf.Duration. */
export function duration(seconds) {
  const whole = Math.floor(seconds);
  return { seconds: String(whole), nanos: Math.round((seconds - whole) * 1e9) };
}

/** google.protobuf.Duration -> seconds (null when unset). */
export function toSeconds(d) {
  if (!d) return null;
  return Number(d.seconds) + (d.nanos ?? 0) / 1e9;
}

/**
 * A payload value -> [bytes, contentType]. Buffers go as they are, strings as
 * UTF-8 text, anything else as JSON; an explicit content type wins.
 */
export function encodePayload(value, contentType = '') {
  if (value === undefined || value === null) return [Buffer.alloc(0), contentType];
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return [Buffer.from(value), contentType];
  if (typeof value === 'string') return [Buffer.from(value, 'utf8'), contentType || 'text/plain; charset=utf-8'];
  return [Buffer.from(JSON.stringify(value), 'utf8'), contentType || 'application/json'];
}

/** Bytes -> a value by content type: parsed JSON, a string for text/*, else the Buffer. */
export function decodePayload(bytes, contentType = '') {
  const ct = contentType.split(';')[0].trim().toLowerCase();
  const buf = Buffer.from(bytes ?? []);
  if (ct === 'application/json' || ct.endsWith('+json')) return buf.length ? JSON.parse(buf.toString('utf8')) : null;
  if (ct.startsWith('text/')) return buf.toString('utf8');
  return buf;
}


/** A plain JSON object as a google.protobuf.Struct (proto-loader's object form). */
export function toStruct(obj) {
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, toValue(v)])) };
}

function toValue(v) {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}
