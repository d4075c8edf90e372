// a2a-broker client for Node.js: promise-based calls for every RPC of
// AgentRegistry, Messaging and TaskQueue, using @grpc/grpc-js and the broker's .proto
// files, loaded at run time: the copy `npm pack` puts in the package, else the
// repository's protos/ directory (when developing in the repository).
//
// Request and response objects are the protos' messages with camelCase field
// names (agentId, maxConcurrentTasks...), enums as their names
// ("TASK_STATUS_RUNNING"), 64-bit integers as strings, bytes as Buffers, and
// Timestamp/Duration as {seconds, nanos}; see the helpers below to build them.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as protoLoader from '@grpc/proto-loader';

import { grpc } from './grpc.js';
import { SCHEDULE_SAFE, scheduleMethods, taskSpec } from './schedules.js';
import { duration, encodePayload, timestamp, toStruct } from './values.js';

export { grpc };
export { Agent } from './agent.js';
export * as a2aTurns from './a2a-turns.js';
export { decodePayload, duration, encodePayload, timestamp, toDate, toSeconds, toStruct } from './values.js';
export { scheduleSpec } from './schedules.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export const PROTO_FILES = ['a2a/broker/v1/agents.proto', 'a2a/broker/v1/messaging.proto', 'a2a/broker/v1/tasks.proto'];
/**
 * Where the .proto files are loaded from: $A2A_BROKER_PROTO_DIR, else the package's own protos/
 * (copied in by `npm pack`: scripts/protos.js), else the repository's protos/.
 */
export const PROTO_DIR =
  process.env.A2A_BROKER_PROTO_DIR ??
  [path.resolve(here, '..', 'protos'), path.resolve(here, '..', '..', '..', 'protos')].find((dir) =>
    fs.existsSync(path.join(dir, PROTO_FILES[0])),
  ) ??
  path.resolve(here, '..', 'protos');
export const DEFAULT_ADDRESS = '127.0.0.1:50051';

let cached;

/** Load the protos once; returns the `a2a.broker.v1` package (service constructors, enums). */
export function loadProtos(protoDir = PROTO_DIR) {
  if (cached && cached.dir === protoDir) return cached.pkg;
  const definition = protoLoader.loadSync(PROTO_FILES, {
    includeDirs: [protoDir],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition).a2a.broker.v1;
  cached = { dir: protoDir, pkg };
  return pkg;
}

// ------------------------------------------------------------------ errors

const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

/** Every failed call rejects with a BrokerError carrying the gRPC status code. */
export class BrokerError extends Error {
  constructor(code, details, method = '') {
    super(`${CODE_NAMES[code] ?? code}: ${details}`);
    this.name = 'BrokerError';
    this.code = code;
    this.codeName = CODE_NAMES[code] ?? String(code);
    this.details = details;
    this.method = method;
  }

  get retryable() {
    return this.code === grpc.status.UNAVAILABLE;
  }
}

function toBrokerError(err, method) {
  if (err instanceof BrokerError) return err;
  return new BrokerError(err.code ?? grpc.status.UNKNOWN, err.details ?? err.message, method);
}

// Calls safe to repeat, retried on UNAVAILABLE (sends and submits only with an idempotency key).
const SAFE = new Set([
  'GetAgent', 'ListAgents', 'Heartbeat', 'GetMessage', 'ListMessages', 'Ack', 'Get', 'List', 'GetTree',
  'GetHistory', 'GetDependencies', 'ListConversations', 'ExtendLease', 'GetSession', 'ListSessions', 'CloseSession', 'CancelSession',
  ...SCHEDULE_SAFE,
  'CreateSubscription', 'GetSubscription', 'ListSubscriptions', // a repeated create answers with it
  'SetConcurrencyLimit', 'ListConcurrencyLimits', 'ListConcurrencyKeys',
]);

// ------------------------------------------------------------------ security

/** Token and TLS settings from the options, else the environment. */
export function resolveSecurity(options = {}, env = process.env) {
  const token = options.token ?? (env.A2A_BROKER_TOKEN || undefined);
  const ca = options.ca ?? (env.A2A_BROKER_CA || undefined);
  const clientCert = options.clientCert ?? (env.A2A_BROKER_CLIENT_CERT || undefined);
  const clientKey = options.clientKey ?? (env.A2A_BROKER_CLIENT_KEY || undefined);
  if (Boolean(clientCert) !== Boolean(clientKey)) {
    throw new Error('a client certificate and its key go together: give both or neither');
  }
  const tls = options.tls ?? (['1', 'true', 'yes'].includes((env.A2A_BROKER_TLS ?? '').toLowerCase()) || Boolean(ca || clientCert));
  const read = (file) => (file ? fs.readFileSync(file) : null);
  const credentials = tls
    ? noIpServerName(grpc.credentials.createSsl(read(ca), read(clientKey), read(clientCert)))
    : grpc.credentials.createInsecure();
  return { token, credentials };
}

/**
 * TLS credentials that send no server name (SNI) when it would be an IP address: grpc-js sets the
 * target's host as `servername` whatever it is (grpc/grpc-node#1919), and Node warns that an IP
 * address there is not permitted by RFC 6066 (DEP0123). The certificate is still checked against
 * the address (or `grpc.ssl_target_name_override`). A host name is left as it is.
 */
function noIpServerName(credentials) {
  const create = credentials._createSecureConnector?.bind(credentials);
  if (!create) return credentials; // another grpc-js: leave it alone
  credentials._createSecureConnector = (...args) => {
    const connector = create(...args);
    const options = connector?.connectionOptions;
    if (options && net.isIP(options.servername ?? '')) delete options.servername;
    return connector;
  };
  return credentials;
}

/** A client interceptor adding `authorization: Bearer <token>` to every call. */
function bearer(token) {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

// ------------------------------------------------------------------ client

/**
 * A client for one broker.
 *
 * @param {string} [address] host:port (default $A2A_BROKER_ADDRESS or 127.0.0.1:50051)
 * @param {object} [options] {timeoutMs = 30000, retries = 4, credentials, protoDir, channelOptions,
 *   token, tls, ca, clientCert, clientKey}: `token` is sent as `authorization: Bearer <token>`
 *   (default $A2A_BROKER_TOKEN); `ca`, `clientCert`, `clientKey` are PEM file paths (default
 *   $A2A_BROKER_CA, $A2A_BROKER_CLIENT_CERT, $A2A_BROKER_CLIENT_KEY); TLS is on when any is set,
 *   or with `tls: true` / $A2A_BROKER_TLS=1 (the system's roots trusted when no CA is given).
 */
export class BrokerClient {
  constructor(address = process.env.A2A_BROKER_ADDRESS || DEFAULT_ADDRESS, options = {}) {
    const pkg = loadProtos(options.protoDir);
    const security = resolveSecurity(options);
    const creds = options.credentials ?? security.credentials;
    const interceptors = security.token ? [bearer(security.token)] : [];
    // gRPC's reconnect backoff grows to 120 s by default: after a broker restart the channel
    // would refuse every call long after the broker is back. Reconnect within a second.
    const channelOptions = {
      'grpc.max_receive_message_length': -1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      ...(options.channelOptions ?? {}),
    };
    this.address = address;
    this.openStreams = new Set();
    this.timeoutMs = options.timeoutMs ?? 30000;
    this.retries = options.retries ?? 4;
    this.agents = new pkg.AgentRegistry(address, creds, { ...channelOptions, interceptors });
    // Share one channel between the three services.
    const channelOverride = this.agents.getChannel();
    this.messaging = new pkg.Messaging(address, creds, { channelOverride, interceptors });
    this.tasks = new pkg.TaskQueue(address, creds, { channelOverride, interceptors });
  }

  /** Close the channel, cancelling the streams still open (an open call would keep the process alive). */
  close() {
    for (const s of [...this.openStreams]) s.cancel();
    this.openStreams.clear();
    this.agents.close();
  }

  /** Wait up to `ms` for the channel to be connected (connecting if idle); resolves true once it is. */
  waitReady(ms) {
    return new Promise((resolve) => {
      try {
        this.agents.waitForReady(new Date(Date.now() + ms), (err) => resolve(!err));
      } catch {
        resolve(false); // closed
      }
    });
  }

  async _unary(stub, method, request, { safe = SAFE.has(method), timeoutMs = this.timeoutMs } = {}) {
    let delay = 100;
    for (let attempt = 0; ; attempt++) {
      try {
        return await new Promise((resolve, reject) => {
          const deadline = timeoutMs ? new Date(Date.now() + timeoutMs) : Infinity;
          stub[method](request, { deadline }, (err, resp) => (err ? reject(err) : resolve(resp)));
        });
      } catch (err) {
        if (safe && err.code === grpc.status.UNAVAILABLE && attempt < this.retries) {
          await new Promise((r) => setTimeout(r, delay * (1 + Math.random() * 0.2)));
          delay = Math.min(delay * 2, 2000);
          continue;
        }
        throw toBrokerError(err, method);
      }
    }
  }

  /**
   * A server stream as an async iterable: `for await (const item of stream)`.
   * `stream.cancel()` ends it; errors reject the iteration with a BrokerError
   * (a cancel by this side just ends it).
   */
  _stream(stub, method, request) {
    const call = stub[method](request);
    let cancelled = false;
    const iterable = {
      call,
      cancel() {
        cancelled = true;
        call.cancel();
      },
      async *[Symbol.asyncIterator]() {
        try {
          for await (const item of call) yield item;
        } catch (err) {
          if (cancelled && err.code === grpc.status.CANCELLED) return;
          throw toBrokerError(err, method);
        } finally {
          if (!cancelled) {
            cancelled = true;
            call.cancel();
          }
        }
      },
    };
    this._opened(iterable, call);
    return iterable;
  }

  /** Remember an open stream until its call ends, for close() to cancel. */
  _opened(stream, call) {
    this.openStreams.add(stream);
    call.on('status', () => this.openStreams.delete(stream));
  }

  /**
   * A bidirectional stream the broker pushes work on and confirms what we write back (Consume,
   * Work): an async iterable of pushed items, and `settle(fields)` resolving to the request's
   * confirmation once committed (rejecting with a BrokerError when its code is not OK). Against
   * a broker without the method (UNIMPLEMENTED) it becomes `fallback()`: `inBand` turns false.
   */
  _duplex(stub, method, opening, { items, confirm, request, fallback, batchRequest, batchHeader }) {
    const queue = [];
    const waiters = [];
    const pending = new Map(); // sequence (a string: 64-bit) -> {resolve, reject}
    let call = null;
    let replaced = null;
    let seq = 0;
    let cancelled = false;
    let over = false; // the call ended: nothing written now would be answered
    let batchMax = 0; // entries per batched request the broker takes (stated in its headers)
    let queued = []; // entries for the next request: [{ entry, resolve, reject }]
    let flushing = false;
    const write = (fields) => {
      seq += 1;
      const s = seq;
      return new Promise((resolve, reject) => {
        pending.set(String(s), { resolve, reject });
        call.write(fields(s));
      });
    };
    // Whatever entries are queued when this turn of the event loop ends go in one request
    // (never waiting to fill a batch): one confirmation, one result per entry.
    const flush = () => {
      flushing = false;
      while (queued.length) {
        const n = Math.min(queued.length, Math.max(batchMax, 1));
        const batch = queued.slice(0, n);
        queued = queued.slice(n);
        if (over || cancelled) {
          const err = new BrokerError(grpc.status.UNAVAILABLE, 'the stream has ended', method);
          for (const b of batch) b.reject(err);
          continue;
        }
        const entries = batch.map((b) => b.entry);
        const sent = write((s) => (n === 1 ? request(s, entries[0]) : batchRequest(s, entries)));
        sent.then(
          (c) => {
            const results = n === 1 ? [c] : c.results;
            batch.forEach((b, i) => {
              const r = results[i];
              if (!r) b.reject(new BrokerError(grpc.status.INTERNAL, 'no result for this entry', method));
              else if (r.code) b.reject(new BrokerError(r.code, r.error, method));
              else b.resolve(r);
            });
          },
          (err) => batch.forEach((b) => b.reject(err)),
        );
      }
    };
    const put = (x) => {
      const w = waiters.shift();
      if (w) w(x);
      else queue.push(x);
    };
    const failAll = (err) => {
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    };
    const start = () => {
      if (call) return;
      call = stub[method]();
      this._opened(stream, call);
      if (batchHeader) {
        call.on('metadata', (md) => {
          batchMax = Math.min(Number(md.get(batchHeader)[0] ?? 0) || 0, 1000);
        });
      }
      call.on('data', (resp) => {
        const c = confirm(resp);
        if (c) {
          const p = pending.get(String(c.sequence));
          pending.delete(String(c.sequence));
          if (p && c.code) p.reject(new BrokerError(c.code, c.error, method));
          else if (p) p.resolve(c);
        }
        for (const item of items(resp)) put({ item });
      });
      call.on('error', (err) => {
        over = true;
        failAll(toBrokerError(err, method));
        put({ err });
      });
      call.on('end', () => {
        over = true;
        failAll(new BrokerError(grpc.status.UNAVAILABLE, 'the stream has ended', method));
        put({ end: true });
      });
      call.write(opening);
    };
    const stream = {
      get inBand() {
        return replaced === null;
      },
      get call() {
        return call;
      },
      cancel() {
        cancelled = true;
        replaced?.cancel();
        call?.cancel();
        failAll(new BrokerError(grpc.status.CANCELLED, 'the stream was closed', method));
      },
      settle(fields) {
        start();
        if (over || cancelled) {
          return Promise.reject(new BrokerError(grpc.status.UNAVAILABLE, 'the stream has ended', method));
        }
        return write((s) => request(s, fields));
      },
      /** `fields` in the next request, with whatever other entries are ready then. */
      coalesced(fields) {
        start();
        if (over || cancelled) {
          return Promise.reject(new BrokerError(grpc.status.UNAVAILABLE, 'the stream has ended', method));
        }
        return new Promise((resolve, reject) => {
          queued.push({ entry: fields, resolve, reject });
          if (!flushing) {
            flushing = true;
            setImmediate(flush);
          }
        });
      },
      /** Write `fields` expecting no confirmation (the broker answers only a refusal). */
      send(fields) {
        start();
        if (over || cancelled) throw new BrokerError(grpc.status.UNAVAILABLE, 'the stream has ended', method);
        seq += 1;
        call.write(request(seq, fields));
      },
      async *[Symbol.asyncIterator]() {
        if (cancelled) return;
        start();
        try {
          for (;;) {
            const x = queue.length ? queue.shift() : await new Promise((r) => waiters.push(r));
            if (x.item !== undefined) yield x.item;
            else if (x.end) return;
            else if (x.err.code === grpc.status.UNIMPLEMENTED && seq === 0 && !cancelled) {
              replaced = fallback(); // an older broker
              yield* replaced;
              return;
            } else if (cancelled && x.err.code === grpc.status.CANCELLED) return;
            else throw toBrokerError(x.err, method);
          }
        } finally {
          // The loop ended (a `break`, a `return`, an error): end the call, or it would keep the
          // channel, and the process, alive after close().
          if (!cancelled) stream.cancel();
        }
      },
    };
    return stream;
  }

  // ---------------------------------------------------------------- agents

  /** Register (or update) an agent: {agentId, maxConcurrentTasks, capabilities, name, agentType, labels...}. */
  register(request) {
    return this._unary(this.agents, 'Register', request, { safe: Boolean(request.agentId) });
  }

  heartbeat(agentId, { status, freeCapacity } = {}) {
    const req = { agentId, status: status ?? 'AGENT_STATUS_UNSPECIFIED' };
    if (freeCapacity !== undefined) req.freeCapacity = freeCapacity;
    return this._unary(this.agents, 'Heartbeat', req);
  }

  deregister(agentId) {
    return this._unary(this.agents, 'Deregister', { agentId });
  }

  getAgent(agentId) {
    return this._unary(this.agents, 'GetAgent', { agentId });
  }

  listAgents(filter = {}) {
    return this._unary(this.agents, 'ListAgents', filter);
  }

  watchAgents(request = {}) {
    return this._stream(this.agents, 'WatchAgents', request);
  }

  // ---------------------------------------------------------------- messaging

  /**
   * Send one message. `to` is an agent id, or {broadcast: {capability}} / {anycast: {capability}}.
   * `payload` is a Buffer, a string or a JSON-able value. Other fields as in SendRequest
   * (messageType, priority, correlationId, ttl: duration(s), idempotencyKey...).
   */
  send(senderId, to, payload, fields = {}) {
    return this._unary(this.messaging, 'Send', sendRequest(senderId, to, payload, fields), {
      safe: Boolean(fields.idempotencyKey),
    });
  }

  /**
   * Answer a delivered message: from its recipient to its sender, in its conversation and with
   * its correlation id unless `fields` name others, marked `inReplyTo` it.
   */
  reply(message, payload, fields = {}) {
    return this.send(message.recipientId, message.senderId, payload, { ...fields, inReplyTo: message.messageId });
  }

  /**
   * Send one message to a subject (such as 'orders.eu.created'): every subscription whose filter
   * matches it gets it. `fields` as for send(), plus `orderingKey`.
   */
  sendToSubject(senderId, subject, payload, fields = {}) {
    return this.send(senderId, { subject }, payload, fields);
  }

  /**
   * Create a durable subscription to the subjects `filter` matches ('*': one token, '>': the
   * rest). Options: ackDeadlineSeconds, maxAttempts, retentionSeconds, ordering (one message at a
   * time per ordering key), deadLetterSubject, and startSequence or startTime (a Date: replay the
   * retained messages from there). Creating the same one again answers with it.
   */
  createSubscription(name, filter, options = {}) {
    const { ackDeadlineSeconds, retentionSeconds, startTime, ...rest } = options;
    const req = { name, filter, ...rest };
    if (ackDeadlineSeconds !== undefined) req.ackDeadline = duration(ackDeadlineSeconds);
    if (retentionSeconds !== undefined) req.retention = duration(retentionSeconds);
    if (startTime !== undefined) req.startTime = timestamp(startTime);
    return this._unary(this.messaging, 'CreateSubscription', req);
  }

  /** One subscription with its figures (backlog, inFlight, deadLetters, oldestUnackedAge). */
  getSubscription(name) {
    return this._unary(this.messaging, 'GetSubscription', { name });
  }

  /** One page of subscriptions by name: `{pageSize, pageToken}`. */
  listSubscriptions(page = {}) {
    return this._unary(this.messaging, 'ListSubscriptions', page);
  }

  /** Delete a subscription and its deliveries (streams consuming it end with NOT_FOUND). */
  deleteSubscription(name) {
    return this._unary(this.messaging, 'DeleteSubscription', { name });
  }

  /**
   * Move a subscription to a point of the retained history: `{sequence}` (a message's sequence)
   * or `{time}` (a Date). Resolves to {subscription, replayed, skipped}.
   */
  seek(name, { sequence, time } = {}) {
    const req = { name };
    if (sequence !== undefined) req.sequence = sequence;
    if (time !== undefined) req.time = timestamp(time);
    return this._unary(this.messaging, 'Seek', req);
  }

  /** One page of conversations: `{participant, pageSize, pageToken}` (an agent: its own). */
  listConversations(filter = {}) {
    return this._unary(this.messaging, 'ListConversations', filter);
  }

  /** Send many messages in one transaction: [{senderId, to, payload, ...fields}]. */
  sendBatch(messages) {
    const reqs = messages.map(({ senderId, to, payload, ...fields }) => sendRequest(senderId, to, payload, fields));
    const safe = reqs.length > 0 && reqs.every((r) => r.idempotencyKey);
    return this._unary(this.messaging, 'SendBatch', { messages: reqs }, { safe });
  }

  /**
   * The agent's messages as an async iterable of single Message objects (each
   * SubscribeResponse may carry several). Ack them with ack(). With `subscription`: that
   * subscription's messages instead, shared with its other consumers.
   */
  subscribe(agentId, { maxInFlight = 0, ackDeadlineSeconds, maxBatch = 0, subscription = '' } = {}) {
    const req = { agentId, maxInFlight, maxBatch, subscription };
    if (ackDeadlineSeconds !== undefined) req.ackDeadline = duration(ackDeadlineSeconds);
    const inner = this._stream(this.messaging, 'Subscribe', req);
    return {
      call: inner.call,
      cancel: () => inner.cancel(),
      async *[Symbol.asyncIterator]() {
        for await (const resp of inner) yield* resp.messages;
      },
    };
  }

  /**
   * As subscribe(), with the acks and nacks on the same stream (the broker's Consume): an async
   * iterable of Message objects with `ack(ids)` (resolves to the acked count once committed),
   * `nack(ids, {delaySeconds, reject, reason})` (resolves to {requeued, deadLettered}), `cancel()`
   * and `inBand` (false against a broker without Consume: Subscribe and unary calls instead);
   * `ackLater(ids)` acks without a confirmation (see the README).
   */
  consume(agentId, { maxInFlight = 0, ackDeadlineSeconds, maxBatch = 0, subscription = '' } = {}) {
    const subscribe = { agentId, maxInFlight, maxBatch, subscription };
    if (ackDeadlineSeconds !== undefined) subscribe.ackDeadline = duration(ackDeadlineSeconds);
    const d = this._duplex(this.messaging, 'Consume', { subscribe }, {
      items: (resp) => resp.messages,
      confirm: (resp) => resp.confirm,
      request: (sequence, fields) => ({ sequence, ...fields }),
      fallback: () => this.subscribe(agentId, { maxInFlight, ackDeadlineSeconds, maxBatch, subscription }),
    });
    const ids = (x) => [].concat(x);
    d.ack = async (messageIds) =>
      d.inBand
        ? (await d.settle({ ackIds: ids(messageIds) })).acked
        : (await this.ack(agentId, messageIds)).acked;
    // Ack without waiting for a confirmation (the broker sends none unless it refuses): committed
    // before the broker counts it; lost with the stream, a redelivery. False: not in band (an
    // older broker: use ack()).
    d.ackLater = (messageIds) => {
      if (!d.inBand) return false;
      d.send({ ackIds: ids(messageIds), noConfirm: true });
      return true;
    };
    d.nack = async (messageIds, { delaySeconds, reject = false, reason = '' } = {}) => {
      if (!d.inBand) return this.nack(agentId, messageIds, { delaySeconds, reject, reason });
      const fields = { nackIds: ids(messageIds), reject, reason };
      if (delaySeconds !== undefined) fields.nackDelay = duration(delaySeconds);
      const c = await d.settle(fields);
      return { requeued: c.requeued, deadLettered: c.deadLettered };
    };
    return d;
  }

  ack(agentId, messageIds) {
    return this._unary(this.messaging, 'Ack', { agentId, messageIds: [].concat(messageIds) });
  }

  nack(agentId, messageIds, { delaySeconds, reject = false, reason = '' } = {}) {
    const req = { agentId, messageIds: [].concat(messageIds), reject, reason };
    if (delaySeconds !== undefined) req.delay = duration(delaySeconds);
    return this._unary(this.messaging, 'Nack', req);
  }

  getMessage(messageId) {
    return this._unary(this.messaging, 'GetMessage', { messageId });
  }

  listMessages(filter = {}) {
    return this._unary(this.messaging, 'ListMessages', filter);
  }

  requeue(messageIds) {
    return this._unary(this.messaging, 'Requeue', { messageIds: [].concat(messageIds) });
  }

  /** Delete dead letters (or {status: 'MESSAGE_STATUS_PROCESSED' | ..._EXPIRED}) created before {createdBefore: timestamp()}. Admins only. */
  purge({ status = 'MESSAGE_STATUS_FAILED', createdBefore, limit = 0 } = {}) {
    const req = { status, limit };
    if (createdBefore !== undefined) req.createdBefore = createdBefore;
    return this._unary(this.messaging, 'Purge', req);
  }

  // ---------------------------------------------------------------- tasks

  /** Submit a task: a TaskSpec ({title, payload, requiredCapabilities, ...}); payload is encoded like send's. */
  submit(spec) {
    const task = taskSpec(spec);
    return this._unary(this.tasks, 'Submit', { task }, { safe: Boolean(task.idempotencyKey) });
  }

  /** Submit a DAG: [{key, task: TaskSpec, dependsOnKeys: [{key, type}], parentKey}]. */
  submitGraph(nodes) {
    const reqNodes = nodes.map((n) => ({ ...n, task: taskSpec(n.task) }));
    const safe = reqNodes.length > 0 && reqNodes.every((n) => n.task.idempotencyKey);
    return this._unary(this.tasks, 'SubmitGraph', { nodes: reqNodes }, { safe });
  }

  claim(agentId, { maxTasks = 1, waitSeconds } = {}) {
    const req = { agentId, maxTasks };
    let timeoutMs = this.timeoutMs;
    if (waitSeconds !== undefined) {
      req.wait = duration(waitSeconds);
      timeoutMs += waitSeconds * 1000;
    }
    return this._unary(this.tasks, 'Claim', req, { timeoutMs });
  }

  /** Assignments and cancellations pushed to the agent (async iterable of ListenResponse). */
  listen(agentId) {
    return this._stream(this.tasks, 'Listen', { agentId });
  }

  /**
   * As listen(), with completions, failures and lease extensions on the same stream (the
   * broker's Work): an async iterable of {assignments, cancellations} with
   * `complete(taskId, attempt, result, resultContentType)` and `fail(taskId, attempt, error,
   * {nonRetryable})` (resolving to {task} once committed), `extendLease(taskId, attempt,
   * {progress, statusNote, extensionSeconds})` (resolving to {leaseExpiresAt}), `cancel()` and
   * `inBand` (false against a broker without Work: Listen and unary calls instead). Outcomes given
   * in the same turn of the event loop go in one request (the broker's batched form).
   */
  work(agentId) {
    const d = this._duplex(this.tasks, 'Work', { listen: { agentId } }, {
      items: (resp) => (resp.assignments.length || resp.cancellations.length ? [resp] : []),
      confirm: (resp) => resp.confirm,
      request: (sequence, fields) => ({ sequence, ...fields }),
      batchRequest: (sequence, entries) => ({ sequence, outcomes: entries }),
      batchHeader: 'a2a-work-batch',
      fallback: () => this.listen(agentId),
    });
    d.complete = async (taskId, attempt, result, resultContentType = '') => {
      if (!d.inBand) return this.complete(taskId, agentId, attempt, result, resultContentType);
      const [bytes, contentType] = encodePayload(result, resultContentType);
      const c = await d.coalesced({ complete: { taskId, attempt, result: bytes, resultContentType: contentType } });
      return { task: c.task };
    };
    d.fail = async (taskId, attempt, error, { nonRetryable = false } = {}) => {
      if (!d.inBand) return this.fail(taskId, agentId, attempt, error, { nonRetryable });
      const c = await d.coalesced({ fail: { taskId, attempt, error, nonRetryable } });
      return { task: c.task };
    };
    d.extendLease = async (taskId, attempt, { progress, statusNote = '', extensionSeconds } = {}) => {
      if (!d.inBand) return this.extendLease(taskId, agentId, attempt, { progress, statusNote, extensionSeconds });
      const extend = { taskId, attempt, statusNote };
      if (progress !== undefined) extend.progress = progress;
      if (extensionSeconds !== undefined) extend.extension = duration(extensionSeconds);
      const c = await d.coalesced({ extend });
      return { leaseExpiresAt: c.leaseExpiresAt };
    };
    return d;
  }

  extendLease(taskId, agentId, attempt, { progress, statusNote = '', extensionSeconds } = {}) {
    const req = { taskId, agentId, attempt, statusNote };
    if (progress !== undefined) req.progress = progress;
    if (extensionSeconds !== undefined) req.extension = duration(extensionSeconds);
    return this._unary(this.tasks, 'ExtendLease', req);
  }

  complete(taskId, agentId, attempt, result, resultContentType = '') {
    const [bytes, contentType] = encodePayload(result, resultContentType);
    return this._unary(this.tasks, 'Complete', {
      taskId, agentId, attempt, result: bytes, resultContentType: contentType,
    });
  }

  // items: [{ taskId, agentId, attempt, result?, resultContentType? }]. Resolves to one
  // { code, message, task } per item (code 0: completed); a refused item changes nothing.
  completeBatch(items) {
    const reqs = items.map(({ taskId, agentId, attempt, result, resultContentType = '' }) => {
      const [bytes, contentType] = encodePayload(result, resultContentType);
      return { taskId, agentId, attempt, result: bytes, resultContentType: contentType };
    });
    return this._unary(this.tasks, 'CompleteBatch', { items: reqs });
  }

  fail(taskId, agentId, attempt, error, { nonRetryable = false } = {}) {
    return this._unary(this.tasks, 'Fail', { taskId, agentId, attempt, error, nonRetryable });
  }

  /** Submit a failed or cancelled task again as a new task (resolves to {task}: the copy). */
  replay(taskId, { actor = '' } = {}) {
    return this._unary(this.tasks, 'Replay', { taskId, actor });
  }

  cancel(taskId, { cascade = false, reason = '', actor = '' } = {}) {
    return this._unary(this.tasks, 'Cancel', { taskId, cascade, reason, actor });
  }

  getTask(taskId) {
    return this._unary(this.tasks, 'Get', { taskId });
  }

  /**
   * Open an orchestration session: `{sessionId?, name, parentSessionId, initiatedBy, context,
   * labels, maxTasks}` (`context` a plain object). Tasks submitted with its `sessionId` (and their
   * children) belong to it; see the README's Sessions.
   */
  createSession(request = {}) {
    const { context, ...rest } = request;
    return this._unary(this.tasks, 'CreateSession', context ? { ...rest, context: toStruct(context) } : rest);
  }

  getSession(sessionId) {
    return this._unary(this.tasks, 'GetSession', { sessionId });
  }

  /** One page of sessions: `{status, initiatedBy, parentSessionId, pageSize, pageToken}`. */
  listSessions(filter = {}) {
    return this._unary(this.tasks, 'ListSessions', filter);
  }

  /** No more tasks: the session ends once every task has finished. */
  closeSession(sessionId, { summary = '' } = {}) {
    return this._unary(this.tasks, 'CloseSession', { sessionId, summary });
  }

  /** Cancel the session and its unfinished tasks: `{session, cancelledTaskIds}`. */
  cancelSession(sessionId, { reason = '', actor = '' } = {}) {
    return this._unary(this.tasks, 'CancelSession', { sessionId, reason, actor });
  }

  /**
   * Create or replace a concurrency limit: `{name, key | capability, maxRunning, rate, per, burst}`
   * (`key`: a concurrency key or a pattern with `*`; `per` in seconds). Tasks carry their key as
   * `concurrencyKey` in `submit`; see the README's concurrency keys.
   */
  setConcurrencyLimit(limit) {
    const { per, ...rest } = limit;
    return this._unary(this.tasks, 'SetConcurrencyLimit', { limit: per == null ? rest : { ...rest, per: duration(per) } });
  }

  async listConcurrencyLimits() {
    return (await this._unary(this.tasks, 'ListConcurrencyLimits', {})).limits;
  }

  deleteConcurrencyLimit(name) {
    return this._unary(this.tasks, 'DeleteConcurrencyLimit', { name });
  }

  /** The keys with the most running and waiting tasks: `{prefix, pageSize}`. */
  async listConcurrencyKeys(filter = {}) {
    return (await this._unary(this.tasks, 'ListConcurrencyKeys', filter)).keys;
  }

  listTasks(filter = {}) {
    return this._unary(this.tasks, 'List', filter);
  }

  /** The task and its descendants (`maxDepth` levels down; 0: all), every page of them. */
  async getTree(taskId, { maxDepth = 0, pageSize = 1000 } = {}) {
    const req = { taskId, pageSize, maxDepth };
    const first = await this._unary(this.tasks, 'GetTree', req);
    let page = first;
    while (page.nextPageToken) {
      page = await this._unary(this.tasks, 'GetTree', { ...req, pageToken: page.nextPageToken });
      first.tasks.push(...page.tasks);
    }
    first.nextPageToken = '';
    return first;
  }

  /** `{prerequisites, dependents}`: each edge's taskId, title, type, status, blocking, resolvedAt. */
  getDependencies(taskId) {
    return this._unary(this.tasks, 'GetDependencies', { taskId });
  }

  /**
   * Make a task that has not started wait on one more prerequisite: `type` is
   * 'DEPENDENCY_TYPE_HARD' (default), '_SOFT' or '_OPTIONAL'. Resolves to the task (a ready one goes
   * back to BLOCKED while the prerequisite is unfinished).
   */
  addDependency(taskId, prerequisiteId, { type = 'DEPENDENCY_TYPE_HARD', actor = '' } = {}) {
    return this._unary(this.tasks, 'AddDependency', { taskId, dependency: { taskId: prerequisiteId, type }, actor });
  }

  /** Drop one prerequisite of a task that has not started; resolves to the task. */
  removeDependency(taskId, prerequisiteId, { actor = '' } = {}) {
    return this._unary(this.tasks, 'RemoveDependency', { taskId, prerequisiteId, actor });
  }

  getHistory(taskId) {
    return this._unary(this.tasks, 'GetHistory', { taskId });
  }

  /** State-change events: watchTasks({taskId} | {subtreeRootId} | {sessionId}, includeSnapshot?). */
  watchTasks(scope) {
    return this._stream(this.tasks, 'Watch', scope);
  }
}

function sendRequest(senderId, to, payload, fields) {
  const [bytes, contentType] = encodePayload(payload, fields.contentType);
  const target = typeof to === 'string' ? { agentId: to } : to;
  return { ...fields, senderId, target, payload: bytes, contentType };
}

Object.assign(BrokerClient.prototype, scheduleMethods);
