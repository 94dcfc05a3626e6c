// bench-connect's HyperDHT anchor (issue 12): one HyperDHT node with its
// defaults, bootstrapping ONLY from the in-lab nodes given with
// --bootstrap (an explicit list, checked against hyperdht's public
// bootstrap servers, so the default list can never be used).
//
//   node node.js --module DIR/node_modules/hyperdht --api SOCK
//        (--bootstrapper HOST:PORT | --infra --bootstrap HOST:PORT[,..] | --bootstrap HOST:PORT[,..])
//
// --bootstrapper: the lab's bootstrap node (DHT.bootstrapper, persistent,
// on the given public address). --infra: a persistent public DHT node
// (ephemeral: false, as HyperDHT's own testnet builds them). Otherwise a
// user node with the defaults (adaptive: ephemeral behind NAT) that
// listens with a server on its key pair and echoes what it reads.
//
// The benchmark drives it over HTTP on a Unix socket (a file: nothing is
// sent on any network by the driver):
//   GET  /status                 {id, ready, firewalled, ephemeral, host, port}
//   POST /find {id, timeout_ms}  a findPeer query until a record is found
//   POST /ping {id, timeout_ms}  first contact: dht.connect(publicKey), one
//                                echo round trip: {first_reply_ms,
//                                connect_ms, path, remote}
// HyperDHT relays no data unless told to (relayThrough, not set here):
// the stream that opens is hole-punched (or direct to an open node), so
// path is "direct" and remote is the peer's address as the stream sees it.
'use strict'

const http = require('http')
const fs = require('fs')
const crypto = require('crypto')

function arg(name, def) {
  const i = process.argv.indexOf('--' + name)
  if (i < 0) return def
  const v = process.argv[i + 1]
  return v === undefined || v.startsWith('--') ? true : v
}

const modulePath = arg('module')
const api = arg('api')
if (!modulePath || !api) {
  console.error('--module and --api are required')
  process.exit(2)
}
const DHT = require(modulePath)
const { BOOTSTRAP_NODES } = require(modulePath + '/lib/constants')

function parseAddrs(s) {
  if (typeof s !== 'string' || s === '') return []
  return s.split(',').map((a) => {
    const i = a.lastIndexOf(':')
    const host = a.slice(0, i)
    const port = Number(a.slice(i + 1))
    if (!host || !(port > 0)) throw new Error('bad address ' + a)
    return { host, port }
  })
}

// Hosts of HyperDHT's public bootstrap servers: refused outright.
const publicHosts = new Set()
for (const n of BOOTSTRAP_NODES) {
  for (const part of n.split(/[@:]/)) publicHosts.add(part)
}

const bootstrapperAt = arg('bootstrapper')
const bootstrap = parseAddrs(arg('bootstrap', ''))
for (const b of bootstrap) {
  if (publicHosts.has(b.host)) throw new Error('refusing public bootstrap node ' + b.host)
}

let dht
if (typeof bootstrapperAt === 'string') {
  const [b] = parseAddrs(bootstrapperAt)
  // DHT.bootstrapper passes bootstrap: [] itself.
  dht = DHT.bootstrapper(b.port, b.host)
} else {
  if (bootstrap.length === 0) {
    console.error('--bootstrap is required: never the public bootstrap list')
    process.exit(2)
  }
  const opts = { bootstrap }
  if (arg('infra', false) === true) {
    opts.ephemeral = false
    opts.firewalled = false
  }
  dht = new DHT(opts)
}
// The option must have reached the node as given (not the default list).
if (dht.bootstrapNodes) {
  for (const b of dht.bootstrapNodes) {
    if (publicHosts.has(b.host)) throw new Error('public bootstrap node in use: ' + b.host)
  }
}

const keyPair = DHT.keyPair()
let ready = false
let server = null
const isUser = typeof bootstrapperAt !== 'string' && arg('infra', false) !== true

async function start() {
  await dht.fullyBootstrapped()
  if (isUser) {
    server = dht.createServer((socket) => {
      socket.on('error', () => {})
      socket.on('data', (d) => socket.write(d))
      socket.on('end', () => socket.end())
    })
    await server.listen(keyPair)
  }
  ready = true
  log('ready', keyPair.publicKey.toString('hex'), 'firewalled', dht.firewalled, 'ephemeral', dht.ephemeral)
}

function log(...a) {
  console.log(new Date().toISOString(), ...a)
}

function withTimeout(ms, what, f) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(what + ': timeout after ' + ms + ' ms')), ms)
    f().then(
      (v) => {
        clearTimeout(t)
        resolve(v)
      },
      (e) => {
        clearTimeout(t)
        reject(e)
      }
    )
  })
}

async function find(id, ms) {
  const start = process.hrtime.bigint()
  const target = Buffer.from(id, 'hex')
  return withTimeout(ms, 'find', async () => {
    for await (const data of dht.findPeer(target)) {
      if (data.peer) return { elapsed_ms: sinceMs(start) }
    }
    throw new Error('find: not found')
  })
}

function sinceMs(start) {
  return Number(process.hrtime.bigint() - start) / 1e6
}

function ping(id, ms) {
  const start = process.hrtime.bigint()
  const socket = dht.connect(Buffer.from(id, 'hex'))
  const msg = crypto.randomBytes(32)
  let connectMs = null
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      socket.destroy()
      reject(new Error('ping: timeout after ' + ms + ' ms'))
    }, ms)
    let got = Buffer.alloc(0)
    socket.on('error', (e) => {
      clearTimeout(t)
      reject(e)
    })
    socket.on('open', () => {
      connectMs = sinceMs(start)
      socket.write(msg)
    })
    socket.on('data', (d) => {
      got = Buffer.concat([got, d])
      if (got.length < msg.length) return
      clearTimeout(t)
      const first = sinceMs(start)
      const raw = socket.rawStream
      const res = {
        first_reply_ms: first,
        connect_ms: connectMs,
        path: 'direct', // no relayThrough: HyperDHT carries no relayed data
        remote: raw ? raw.remoteHost + ':' + raw.remotePort : ''
      }
      socket.destroy()
      if (!got.subarray(0, msg.length).equals(msg)) reject(new Error('echo differs'))
      else resolve(res)
    })
  })
}

function body(req) {
  return new Promise((resolve, reject) => {
    let s = ''
    req.on('data', (d) => (s += d))
    req.on('end', () => {
      try {
        resolve(s ? JSON.parse(s) : {})
      } catch (e) {
        reject(e)
      }
    })
  })
}

const httpServer = http.createServer(async (req, res) => {
  const send = (code, v) => {
    res.writeHead(code, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify(v))
  }
  try {
    if (req.method === 'GET' && req.url === '/status') {
      return send(200, {
        id: isUser ? keyPair.publicKey.toString('hex') : '',
        ready,
        firewalled: dht.firewalled,
        ephemeral: dht.ephemeral,
        host: dht.host,
        port: dht.port
      })
    }
    if (req.method === 'POST' && (req.url === '/find' || req.url === '/ping')) {
      const b = await body(req)
      const ms = b.timeout_ms > 0 ? b.timeout_ms : 10000
      return send(200, req.url === '/find' ? await find(b.id, ms) : await ping(b.id, ms))
    }
    send(404, { error: 'no such endpoint' })
  } catch (e) {
    send(500, { error: String((e && e.message) || e) })
  }
})

try {
  fs.unlinkSync(api)
} catch {}
httpServer.listen(api)
start().catch((e) => {
  log('start failed', e)
  process.exit(1)
})

function stop() {
  httpServer.close()
  Promise.resolve(server && server.close())
    .then(() => dht.destroy())
    .finally(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
