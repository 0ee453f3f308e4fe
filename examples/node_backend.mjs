// A Node backend on ipfs-share's HTTP API: plain fetch, no SDK (Node >= 18).
//
// Two agents (`ipfs-share serve`), one per home: alice's backend puts a file and shares
// it with bob; bob's backend hears the capsule arrive on the event stream and opens it,
// whole and by range. The contract is docs/openapi.json; errors are
// {"error": {"code", "message", "hint"}} with the statuses of the README's table.
//
//   ALICE_API=http://127.0.0.1:5052 ALICE_TOKEN=$(IPFS_SHARE_HOME=... ipfs-share agent token) \
//   BOB_API=http://127.0.0.1:5053   BOB_TOKEN=...  node examples/node_backend.mjs
//
// It prints one JSON line saying what happened, and exits non-zero if anything failed.

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || { code: "http_" + status, message: String(status), hint: "" };
    super(`${error.code}: ${error.message}` + (error.hint ? ` (hint: ${error.hint})` : ""));
    this.status = status;
    this.code = error.code;
  }
}

// One agent's API: every call carries the bearer token.
function agent(base, token) {
  const auth = { Authorization: `Bearer ${token}` };

  async function call(method, path, { json, body, headers = {} } = {}) {
    const init = { method, headers: { ...auth, ...headers } };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    } else if (body !== undefined) {
      init.body = body;
      init.duplex = "half"; // a streamed request body
    }
    const response = await fetch(base + path, init);
    if (!response.ok) {
      throw new ApiError(response.status, await response.json().catch(() => null));
    }
    return response;
  }

  const json = async (method, path, options) => (await call(method, path, options)).json();

  return {
    identities: () => json("GET", "/v1/identities"),
    addContact: (petname, did) => json("PUT", `/v1/contacts/${encodeURIComponent(petname)}`, { json: { did } }),
    // The body is streamed: a ReadableStream, so nothing is held whole in memory.
    putFile: (name, stream, mediaType) =>
      json("POST", `/v1/files?name=${encodeURIComponent(name)}`, {
        body: stream,
        headers: { "Content-Type": mediaType },
      }),
    share: (options) => json("POST", "/v1/shares", { json: options }),
    open: (capsule, range) =>
      call("GET", `/v1/capsules/${capsule}/plaintext`, { headers: range ? { Range: range } : {} }),
    // Server-Sent Events: yields {id, type, data}; resume with lastEventId after a drop.
    async *events(lastEventId, signal) {
      const headers = lastEventId == null ? {} : { "Last-Event-ID": String(lastEventId) };
      const response = await fetch(base + "/v1/events", { headers: { ...auth, ...headers }, signal });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      const decoder = new TextDecoder();
      let buffer = "";
      for await (const piece of response.body) {
        buffer += decoder.decode(piece, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = {};
          for (const line of frame.split("\n")) {
            if (line.startsWith("id: ")) event.id = Number(line.slice(4));
            else if (line.startsWith("event: ")) event.type = line.slice(7);
            else if (line.startsWith("data: ")) event.data = JSON.parse(line.slice(6));
          }
          if (event.type) yield event; // a frame without a type is a heartbeat
        }
      }
    },
  };
}

function only(list) {
  const found = list.identities.find((i) => i.default) || list.identities[0];
  if (!found) throw new Error("the home has no identity: create one first");
  return found;
}

function textStream(text, pieceSize = 1000) {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(at, at + pieceSize));
      at += pieceSize;
    },
  });
}

async function main() {
  const env = process.env;
  const alice = agent(env.ALICE_API, env.ALICE_TOKEN);
  const bob = agent(env.BOB_API, env.BOB_TOKEN);
  const aliceId = only(await alice.identities());
  const bobId = only(await bob.identities());
  await alice.addContact("bob", bobId.did);
  await bob.addContact("alice", aliceId.did); // bob's agent reads alice's mailbox from now on

  // bob listens before alice sends (a reconnect would pass the last id it saw).
  const stop = new AbortController();
  const arrived = (async () => {
    for await (const event of bob.events(null, stop.signal)) {
      if (event.type === "capsule_received") return event;
    }
    throw new Error("the event stream ended");
  })();

  const text = "minutes of the meeting\n".repeat(2000);
  const file = await alice.putFile("minutes.txt", textStream(text), "text/plain; charset=utf-8");
  const capsule = await alice.share({ content: file.content, to: ["bob"], expires_in: 3600, send: true });

  const timeout = setTimeout(() => stop.abort(), 60_000);
  const event = await arrived;
  clearTimeout(timeout);
  stop.abort();
  if (event.data.capsule !== capsule.capsule) throw new Error(`expected ${capsule.capsule}, got ${event.data.capsule}`);

  const whole = await (await bob.open(capsule.capsule)).text();
  const part = await bob.open(capsule.capsule, "bytes=0-21");
  const partText = await part.text();
  let refused = null;
  try {
    await bob.open(capsule.capsule, `bytes=${text.length}-`);
  } catch (err) {
    refused = err.status;
  }
  const ok = whole === text && part.status === 206 && partText === text.slice(0, 22) && refused === 416;
  console.log(
    JSON.stringify({
      ok,
      content: file.content,
      capsule: capsule.capsule,
      event_id: event.id,
      opened_bytes: whole.length,
      range_status: part.status,
      past_the_end: refused,
    }),
  );
  if (!ok) process.exit(1);
}

main().catch((err) => {
  console.error(`node_backend: ${err.message}`);
  process.exit(2);
});
