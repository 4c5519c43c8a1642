/* The console's one store. State is a plain object; `set(patch)` replaces keys and records them
 * as changed, `touch(key)` records a key whose value changed in place (a Map of visitors, a
 * chat's list of events). One animation-frame flush then redraws only the regions that depend
 * on a changed key, so a burst of events costs one redraw and an unrelated change costs none.
 *
 * A region is (keys, draw): `draw(changed)` gets the set of changed keys (on the first draw,
 * one that has every key) and may update its DOM in place as finely as it likes. A key ending
 * in "*" matches every key with that prefix ("log:*": any chat's log). Regions belong to a scope
 * — the shell's, a view's — and end with it: a request that comes back after its view was left
 * just updates the state, and nothing is drawn, so no view checks whether it is still current. */

const EVERYTHING = { has: () => true };

function matches(keys, changed) {
  for (const k of keys) {
    if (k.endsWith("*")) {
      const p = k.slice(0, -1);
      for (const c of changed) if (c.startsWith(p)) return true;
    } else if (changed.has(k)) return true;
  }
  return false;
}

export function createStore(initial) {
  const state = Object.assign({}, initial);
  const regions = new Set();
  let changed = new Set();
  let frame = 0;

  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(flush);
  };

  /** Replace keys of the state; the regions that depend on them redraw in the next frame. */
  function set(patch) {
    for (const k in patch) {
      state[k] = patch[k];
      changed.add(k);
    }
    schedule();
  }

  /** Record keys whose values were changed in place. */
  function touch(...keys) {
    for (const k of keys) changed.add(k);
    schedule();
  }

  /** Redraw now what depends on the changes so far (the frame calls it; so may an event that
   * must show at once). Keys a region changes while drawing wait for the next frame. */
  function flush() {
    if (frame) cancelAnimationFrame(frame);
    frame = 0;
    const now = changed;
    changed = new Set();
    if (!now.size) return;
    for (const r of Array.from(regions)) {
      if (!regions.has(r) || !matches(r.keys, now)) continue;
      try {
        r.draw(now);
      } catch (e) {
        setTimeout(() => {
          throw e; // reported as any error is, after the other regions have drawn
        });
      }
    }
  }

  /** A group of regions that end together. */
  function scope() {
    const mine = new Set();
    return {
      /** Draw now, then again whenever one of `keys` changes, until the scope ends. */
      region(keys, draw) {
        const r = { keys, draw };
        regions.add(r);
        mine.add(r);
        draw(EVERYTHING);
        return r;
      },
      /** A listener on something outside the scope's DOM, removed when the scope ends. */
      on(target, type, fn) {
        target.addEventListener(type, fn);
        mine.add({ end: () => target.removeEventListener(type, fn) });
      },
      /** Call `fn(entry)` whenever `el` changes size, until the scope ends. */
      resized(el, fn) {
        const o = new ResizeObserver((entries) => entries.forEach(fn));
        o.observe(el);
        mine.add({ end: () => o.disconnect() });
      },
      /** Run `fn` every `ms` milliseconds, until the scope ends. */
      every(ms, fn) {
        const t = setInterval(fn, ms);
        mine.add({ end: () => clearInterval(t) });
      },
      /** Run `fn` once after `ms` milliseconds (again: the earlier one is dropped), unless the
       * scope ends first. */
      later(ms, fn) {
        if (this._later) clearTimeout(this._later.t);
        const item = { end: () => clearTimeout(item.t) };
        item.t = setTimeout(() => (mine.delete(item), fn()), ms);
        this._later = item;
        mine.add(item);
      },
      end() {
        for (const r of mine)
          if (r.end) r.end();
          else regions.delete(r);
        mine.clear();
      },
    };
  }

  return { state, set, touch, flush, scope };
}

/** Preferences kept in this browser (localStorage, "cutelive.console.*"). */
export const local = {
  get(k) {
    try {
      return JSON.parse(localStorage.getItem("cutelive.console." + k));
    } catch (e) {
      return null;
    }
  },
  set(k, v) {
    try {
      localStorage.setItem("cutelive.console." + k, JSON.stringify(v));
    } catch (e) {
      /* storage full or blocked */
    }
  },
};

/** The console's store. */
export const store = createStore({});
