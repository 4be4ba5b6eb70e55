// Remote control for one mqtt.js client, used by the Go interop tests.
// Reads one JSON command per line on stdin and writes one JSON event per
// line on stdout:
//   {"op":"connect","url":"mqtt://...","opts":{...mqtt.js options}}
//        -> {"ev":"connect","sessionPresent":b,"properties":{...}} | {"ev":"error","message":...}
//   {"op":"subscribe","topic":t,"opts":{qos,nl,rap,rh,properties}} -> {"ev":"suback","granted":[...]}
//   {"op":"unsubscribe","topic":t}                                 -> {"ev":"unsuback"}
//   {"op":"publish","topic":t,"payload":s,"opts":{qos,retain,properties}} -> {"ev":"published"}
//   {"op":"end"}   clean DISCONNECT                                 -> {"ev":"end"}
//   {"op":"drop"}  close the socket without DISCONNECT (fires the will) -> {"ev":"dropped"}
// and, whenever a message arrives:
//   {"ev":"message","topic":t,"payload":s,"qos":n,"retain":b,"properties":{...}}
// correlationData travels as a string both ways.
'use strict';
const mqtt = require('mqtt');
const readline = require('readline');

let client = null;
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (op, err) => emit({ ev: 'error', op, message: String(err && err.message || err), code: err && err.code });

function props(p) {
  if (!p) return p;
  const out = Object.assign({}, p);
  if (typeof out.correlationData === 'string') out.correlationData = Buffer.from(out.correlationData);
  return out;
}

function plain(p) {
  if (!p) return p;
  const out = Object.assign({}, p);
  if (Buffer.isBuffer(out.correlationData)) out.correlationData = out.correlationData.toString();
  return out;
}

const handlers = {
  connect(cmd) {
    const opts = Object.assign({ reconnectPeriod: 0, connectTimeout: 15000 }, cmd.opts || {});
    if (opts.will) {
      opts.will = Object.assign({}, opts.will, { properties: props(opts.will.properties) });
    }
    client = mqtt.connect(cmd.url, opts);
    let settled = false;
    client.on('connect', (ack) => {
      if (settled) return;
      settled = true;
      emit({ ev: 'connect', sessionPresent: !!ack.sessionPresent, reasonCode: ack.reasonCode || 0, properties: ack.properties || {} });
    });
    client.on('error', (err) => {
      if (!settled) { settled = true; fail('connect', err); }
    });
    client.on('message', (topic, payload, packet) => {
      emit({ ev: 'message', topic, payload: payload.toString(), qos: packet.qos, retain: !!packet.retain, properties: plain(packet.properties) || {} });
    });
    client.on('disconnect', (pkt) => emit({ ev: 'disconnect', reasonCode: pkt.reasonCode }));
  },
  subscribe(cmd) {
    const o = Object.assign({ qos: 0 }, cmd.opts || {});
    client.subscribe(cmd.topic, o, (err, granted) => {
      if (err) return fail('subscribe', err);
      emit({ ev: 'suback', granted: granted.map((g) => g.qos) });
    });
  },
  unsubscribe(cmd) {
    client.unsubscribe(cmd.topic, (err) => (err ? fail('unsubscribe', err) : emit({ ev: 'unsuback' })));
  },
  publish(cmd) {
    const o = Object.assign({ qos: 0 }, cmd.opts || {});
    o.properties = props(o.properties);
    client.publish(cmd.topic, cmd.payload || '', o, (err) => (err ? fail('publish', err) : emit({ ev: 'published' })));
  },
  end() {
    client.end(false, {}, () => emit({ ev: 'end' }));
  },
  drop() {
    client.options.reconnectPeriod = 0;
    client.stream.destroy();
    emit({ ev: 'dropped' });
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    return fail('parse', e);
  }
  const h = handlers[cmd.op];
  if (!h) return fail(cmd.op, 'unknown op');
  try {
    h(cmd);
  } catch (e) {
    fail(cmd.op, e);
  }
});
rl.on('close', () => {
  if (client) client.end(true);
  setTimeout(() => process.exit(0), 50);
});
