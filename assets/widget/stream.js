/* Cute Live Support: the event-stream client (docs/PROTOCOL.md §3, §4, §9).
 *
 * Shared by the visitor widget and the operator console. On a customer's page it hangs itself on
 * window.CuteLive (the widget's one global); on our own console page on window.CuteLiveStream.
 *
 * new Stream({base, role, token, headers, onEvent, onWelcome, onState, onTransport, onBadToken,
 *             onFatal, preferPoll})
 *   .start() / .stop() / .send(cmd) -> Promise(ack) / .kick() / .cursors {chatId: seq}
 */
(function () {
  "use strict";

  const MAX_WS_FAILS = 3; // §9: consecutive WS attempts failing before welcome, then long-poll
  // (one counts only while the server answers HTTP: a server restart is not a blocked WebSocket)
  const PROBE_AFTER = 5 * 60 * 1000; // §9: try the WebSocket again after 5 minutes on long-poll
  const DEAD_AFTER = 10000; // §9: no frame within 10 s after a ping: the connection is dead
  const STABLE_AFTER = 10000; // §9: reset the backoff after 10 s up
  const REQUEST_TIMEOUT = 20000;

  class Stream {
    constructor(o) {
      this.o = o;
      this.cursors = {};
      this.mode = o.preferPoll ? "poll" : "ws";
      this.wsFails = 0;
      this.attempt = 0;
      this.state = "idle";
      this.pending = new Map();
      this.nextId = 0;
      this.heartbeat = 25;
      this.stopped = true;
      this.gen = 0;
      this.ws = null;
      this.timers = {};
      this.lastRecv = 0;
    }

    start() {
      if (!this.stopped) return;
      this.stopped = false;
      this._setState("connecting");
      this._connect();
      let last = Date.now();
      // A laptop waking from sleep: timers jump; check the connection at once.
      this.timers.watch = setInterval(() => {
        const now = Date.now();
        if (now - last > 15000) this.kick();
        last = now;
      }, 5000);
    }

    stop() {
      this.stopped = true;
      this.gen++;
      for (const k in this.timers) {
        clearTimeout(this.timers[k]);
        clearInterval(this.timers[k]);
      }
      this.timers = {};
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        try {
          ws.close(1000);
        } catch (e) {
          /* already closed */
        }
      }
      if (this.probe) this._closeProbe();
      if (this.pollAbort) this.pollAbort.abort();
      this._failPending();
      this._setState("idle");
    }

    /** Check the connection now (after sleep, on 'online', when the tab becomes visible). */
    kick() {
      if (this.stopped) return;
      if (this.timers.retry) {
        clearTimeout(this.timers.retry);
        delete this.timers.retry;
        this._connect();
      } else if (this.ws && this.state === "connected") {
        this._ping();
      } else if (this.mode === "poll" && this.pollAbort) {
        this.kicked = true;
        this.pollAbort.abort();
      }
    }

    get transport() {
      return this.mode;
    }

    /** Send a command; resolves with its ack (or pong), rejects with the error event. */
    send(cmd) {
      if (this.state !== "connected") {
        return Promise.reject({ type: "error", error: "disconnected", message: "Not connected." });
      }
      const id = "r" + ++this.nextId;
      cmd = Object.assign({}, cmd, { id });
      if (this.ws) {
        return new Promise((resolve, reject) => {
          const t = setTimeout(() => {
            this.pending.delete(id);
            reject({ type: "error", error: "timeout", message: "No answer from the server." });
          }, REQUEST_TIMEOUT);
          this.pending.set(id, { resolve, reject, t });
          try {
            this.ws.send(JSON.stringify(cmd));
          } catch (e) {
            clearTimeout(t);
            this.pending.delete(id);
            reject({ type: "error", error: "disconnected", message: "Not connected." });
          }
        });
      }
      return this._post("send", cmd, REQUEST_TIMEOUT).then(
        (ev) => {
          if (ev && ev.type === "error") throw ev;
          return ev;
        },
        (err) => {
          throw err.body || { type: "error", error: "disconnected", message: "Not connected." };
        },
      );
    }

    // -- internals --------------------------------------------------------------------------

    _setState(s) {
      if (this.state === s) return;
      this.state = s;
      if (this.o.onState) this.o.onState(s, this.mode);
    }

    _url(path) {
      return (
        this.o.base + "/api/" + (this.o.role === "visitor" ? "visitor" : "console") + "/" + path
      );
    }

    _connect() {
      delete this.timers.retry;
      if (this.stopped) return;
      if (this.mode === "ws") this._openWs(false);
      else this._pollLoop(++this.gen);
    }

    _retry() {
      if (this.stopped) return;
      this._setState("reconnecting");
      const delay = Math.min(30, 0.5 * Math.pow(2, this.attempt)) * (0.5 + Math.random());
      this.attempt++;
      clearTimeout(this.timers.retry);
      this.timers.retry = setTimeout(() => this._connect(), delay * 1000);
    }

    _hello() {
      const h = { type: "hello", cursors: Object.assign({}, this.cursors) };
      if (this.o.role === "visitor") h.token = this.o.token();
      return h;
    }

    _openWs(probe) {
      let ws;
      try {
        ws = new WebSocket(this._url("ws").replace(/^http/, "ws"));
      } catch (e) {
        if (probe) this._probeFailed();
        else this._wsFailed(null, false);
        return;
      }
      let welcomed = false;
      if (probe) this.probe = ws;
      else this.ws = ws;
      const connectTimer = setTimeout(() => {
        if (!welcomed) ws.close();
      }, 10000);
      ws.onopen = () => ws.send(JSON.stringify(this._hello()));
      ws.onmessage = (m) => {
        let ev;
        try {
          ev = JSON.parse(m.data);
        } catch (e) {
          return;
        }
        if (!welcomed) {
          if (ev.type !== "welcome") return; // an error to hello; the close follows
          welcomed = true;
          clearTimeout(connectTimer);
          if (probe) {
            // The WebSocket works again: leave long-poll.
            this.probe = null;
            this.gen++;
            if (this.pollAbort) this.pollAbort.abort();
            this.ws = ws;
            this.mode = "ws";
            if (this.o.onTransport) this.o.onTransport("ws");
          }
          this.wsFails = 0;
          this._up(ev);
          return;
        }
        this.lastRecv = Date.now();
        if (ws === this.ws) this._handle(ev);
      };
      ws.onclose = (e) => {
        clearTimeout(connectTimer);
        if (this.probe === ws) {
          this.probe = null;
          this._probeFailed();
        } else if (this.ws === ws) {
          this.ws = null;
          this._wsFailed(e, welcomed);
        }
      };
    }

    _closeProbe() {
      const p = this.probe;
      this.probe = null;
      try {
        p.close();
      } catch (e) {
        /* ignore */
      }
    }

    _probeFailed() {
      if (this.stopped || this.mode !== "poll") return;
      clearTimeout(this.timers.probe);
      this.timers.probe = setTimeout(() => this._openWs(true), PROBE_AFTER);
    }

    _wsFailed(e, welcomed) {
      this._stopHeartbeat();
      this._failPending();
      if (this.stopped) return;
      const code = e ? e.code : 0;
      if (code === 4001) {
        this.stop();
        this._setState("ended");
        if (this.o.onFatal) this.o.onFatal("session_ended");
        return;
      }
      if (code === 4003 && this.o.onBadToken) {
        this._setState("reconnecting");
        this.o.onBadToken().then(
          () => this._connect(),
          () => this._retry(),
        );
        return;
      }
      if (welcomed) return this._retry();
      // §9: a failure counts towards the fallback only if the server is reachable over HTTP now.
      this._setState("reconnecting");
      const gen = this.gen;
      this._reachable().then((up) => {
        if (this.stopped || gen !== this.gen || this.ws) return;
        if (up && ++this.wsFails >= MAX_WS_FAILS) {
          this.mode = "poll";
          if (this.o.onTransport) this.o.onTransport("poll");
          this._connect();
          this._probeFailed();
          return;
        }
        this._retry();
      });
    }

    /** Does the server answer HTTP right now (GET /api/status)? */
    _reachable() {
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(), 5000);
      return fetch(this.o.base + "/api/status", {
        cache: "no-store",
        credentials: "omit",
        signal: ac.signal,
      })
        .then(
          (r) => r.ok,
          () => false,
        )
        .finally(() => clearTimeout(t));
    }

    _up(welcome) {
      this.lastRecv = Date.now();
      this.heartbeat = welcome.heartbeat || 25;
      clearTimeout(this.timers.stable);
      this.timers.stable = setTimeout(() => (this.attempt = 0), STABLE_AFTER);
      this._setState("connected");
      if (this.ws) {
        clearInterval(this.timers.ping);
        this.timers.ping = setInterval(() => this._ping(), this.heartbeat * 1000);
      }
      if (this.o.onWelcome) this.o.onWelcome(welcome);
    }

    _ping() {
      const ws = this.ws;
      if (!ws) return;
      const sent = Date.now();
      try {
        ws.send(JSON.stringify({ type: "ping", id: "p" + ++this.nextId }));
      } catch (e) {
        /* the close event follows */
      }
      clearTimeout(this.timers.dead);
      this.timers.dead = setTimeout(() => {
        if (this.lastRecv < sent && this.ws === ws) {
          this.ws = null;
          try {
            ws.close();
          } catch (e) {
            /* ignore */
          }
          this._wsFailed(null, true);
        }
      }, DEAD_AFTER);
    }

    _stopHeartbeat() {
      clearInterval(this.timers.ping);
      clearTimeout(this.timers.dead);
      clearTimeout(this.timers.stable);
    }

    _failPending() {
      for (const [, p] of this.pending) {
        clearTimeout(p.t);
        p.reject({ type: "error", error: "disconnected", message: "Not connected." });
      }
      this.pending.clear();
    }

    _handle(ev) {
      if (!ev || typeof ev.type !== "string") return;
      if (ev.ref != null && (ev.type === "ack" || ev.type === "error" || ev.type === "pong")) {
        const p = this.pending.get(ev.ref);
        if (p) {
          this.pending.delete(ev.ref);
          clearTimeout(p.t);
          if (ev.type === "error") p.reject(ev);
          else p.resolve(ev);
        }
        return;
      }
      if (ev.type === "pong" || ev.type === "ack") return;
      if (ev.type === "welcome") return this._up(ev);
      if (ev.chat_id != null && typeof ev.seq === "number") {
        const cur = this.cursors[ev.chat_id] || 0;
        if (ev.seq <= cur) return; // already applied
        if (ev.seq > cur + 1) return this._sync(); // a gap: ask for a replay
        this.cursors[ev.chat_id] = ev.seq;
      }
      if (ev.type === "reset") delete this.cursors[ev.chat_id];
      this.o.onEvent(ev);
    }

    _sync() {
      if (!this.ws) {
        // Long-poll: /send carries no conn, so resync by starting a new conn with our cursors.
        this.pollResync = true;
        return;
      }
      if (this.syncing) return;
      this.syncing = true;
      this.send({ type: "sync", cursors: Object.assign({}, this.cursors) })
        .catch(() => {})
        .then(() => (this.syncing = false));
    }

    /** POST JSON; resolves with the JSON answer, rejects with {status, body} on any failure. */
    _post(path, body, timeout, ac) {
      ac = ac || new AbortController();
      const t = setTimeout(() => ac.abort(), timeout);
      const headers = Object.assign({ "Content-Type": "application/json" }, this.o.headers());
      return fetch(this._url(path), {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: ac.signal,
        credentials: this.o.role === "visitor" ? "omit" : "same-origin",
        cache: "no-store",
      })
        .then(
          (r) =>
            r.json().then(
              (j) => ({ r, j }),
              () => ({ r, j: null }),
            ),
          () => ({ r: { ok: false, status: 0 }, j: null }),
        )
        .then(({ r, j }) => {
          if (!r.ok || !j) throw { status: r.status, body: j };
          return j;
        })
        .finally(() => clearTimeout(t));
    }

    async _pollLoop(gen) {
      let conn = null;
      let welcomed = false;
      while (!this.stopped && gen === this.gen) {
        let res;
        try {
          const ac = new AbortController();
          this.pollAbort = ac;
          if (this.pollResync) {
            this.pollResync = false;
            conn = null;
          }
          res = await this._post(
            "poll",
            { conn, cursors: Object.assign({}, this.cursors) },
            65000,
            ac,
          );
        } catch (e) {
          if (gen !== this.gen || this.stopped) return;
          if (this.kicked) {
            this.kicked = false;
            continue;
          }
          const err = e && e.body;
          if (err && err.error === "bad_token" && this.o.onBadToken) {
            conn = null;
            this._setState("reconnecting");
            try {
              await this.o.onBadToken();
            } catch (x) {
              /* retry below */
            }
            continue;
          }
          if (err && (err.error === "not_authenticated" || err.error === "session_ended")) {
            this.stop();
            this._setState("ended");
            if (this.o.onFatal) this.o.onFatal(err.error);
            return;
          }
          welcomed = false;
          conn = null;
          this._setState("reconnecting");
          let delay = Math.min(30, 0.5 * Math.pow(2, this.attempt)) * (0.5 + Math.random());
          if (err && err.retry_after) delay = Math.max(delay, err.retry_after);
          this.attempt++;
          await new Promise((r) => (this.timers.retry = setTimeout(r, delay * 1000)));
          delete this.timers.retry;
          continue;
        }
        if (gen !== this.gen || this.stopped) return;
        if (res.conn !== conn) welcomed = false;
        conn = res.conn;
        for (const ev of res.events || []) {
          if (gen !== this.gen || this.pollResync) break;
          this.lastRecv = Date.now();
          if (ev.type === "welcome") {
            welcomed = true;
            this._up(ev);
          } else if (welcomed) this._handle(ev);
        }
      }
    }
  }

  const CL = window.CuteLive;
  if (CL && CL._k) CL._k.Stream = Stream;
  else window.CuteLiveStream = Stream;
})();
