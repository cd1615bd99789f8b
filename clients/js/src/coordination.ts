/**
 * What the tabs of one origin share so that only one of them refreshes:
 *
 * - a lock (the Web Locks API) that serialises refreshes, sign-ins and
 *   sign-outs across tabs;
 * - a generation record (IndexedDB; no token in it) that the lock holder
 *   bumps before it lets go, so the next holder knows, without racing any
 *   message, whether someone else already refreshed;
 * - a BroadcastChannel on which the holder then sends the new access token
 *   (and, in body mode, the refresh token) or the sign-out.
 *
 * Each piece has a stand-in for environments without it (a lock and record
 * per JavaScript realm, no channel), which is what a lone tab needs.
 */
import type { UserProfile } from "./client.js";

/** What the client needs of navigator.locks. */
export interface Locks {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
  /** Names of the locks held now, when the environment can tell. */
  held?(): Promise<string[]>;
  /** Holds name until release() is called (tab presence). */
  hold?(name: string): () => void;
}

/** The shared generation record: bumped by every sign-in, refresh and sign-out. */
export interface Generation {
  gen: number;
  /** Expiry (ms since the epoch) of the access token of this generation. */
  expiresAt: number;
  signedOut: boolean;
}

export interface GenerationStore {
  read(): Promise<Generation | null>;
  write(g: Generation): Promise<void>;
}

/** The channel's messages. */
export type Message =
  | {
    type: "token"; gen: number; accessToken: string; expiresAt: number; lifetime: number;
    userId: string; sessionId: string; refreshToken?: string; profile?: UserProfile | null;
  }
  | { type: "signed-out"; gen: number }
  | { type: "ask"; gen: number };

export interface Channel {
  post(m: Message): void;
  onMessage(handler: (m: Message) => void): void;
  close(): void;
}

/** A lock per JavaScript realm: a FIFO promise chain per name. */
export function localLocks(): Locks {
  const tails = new Map<string, Promise<unknown>>();
  return {
    request<T>(name: string, callback: () => Promise<T>): Promise<T> {
      const prev = tails.get(name) ?? Promise.resolve();
      const run = prev.then(callback, callback);
      tails.set(name, run.catch(() => undefined));
      return run;
    },
  };
}

interface NavigatorLocks {
  request(name: string, cb: () => Promise<unknown>): Promise<unknown>;
  query(): Promise<{ held?: Array<{ name?: string }> }>;
}

/** navigator.locks, when the environment has it. */
export function webLocks(): Locks | null {
  const nav = (globalThis as { navigator?: { locks?: NavigatorLocks } }).navigator;
  const locks = nav?.locks;
  if (!locks) return null;
  return {
    request: <T>(name: string, cb: () => Promise<T>) => locks.request(name, cb) as Promise<T>,
    held: async () => ((await locks.query()).held ?? []).map((l) => l.name ?? ""),
    hold(name: string): () => void {
      let release!: () => void;
      const released = new Promise<void>((resolve) => { release = resolve; });
      void locks.request(name, () => released);
      return release;
    },
  };
}

export function memoryStore(): GenerationStore {
  let value: Generation | null = null;
  return {
    read: async () => (value ? { ...value } : null),
    write: async (g) => { value = { ...g }; },
  };
}

/** The generation record in IndexedDB, keyed by key; null without IndexedDB. */
export function indexedDbStore(key: string): GenerationStore | null {
  const idb = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!idb) return null;
  let db: Promise<IDBDatabase> | null = null;
  const open = (): Promise<IDBDatabase> => {
    db ??= new Promise((resolve, reject) => {
      const req = idb.open("authsvc-client", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("generation");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return db;
  };
  const run = async <T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> => {
    const tx = (await open()).transaction("generation", mode);
    const req = op(tx.objectStore("generation"));
    return new Promise<T>((resolve, reject) => {
      tx.oncomplete = () => resolve(req.result); // committed: visible to every tab
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  };
  return {
    read: async () => ((await run("readonly", (s) => s.get(key))) as Generation | undefined) ?? null,
    write: async (g) => { await run("readwrite", (s) => s.put(g, key)); },
  };
}

/** A BroadcastChannel named name, or null without one. */
export function broadcastChannel(name: string): Channel | null {
  const BC = (globalThis as { BroadcastChannel?: typeof BroadcastChannel }).BroadcastChannel;
  if (!BC) return null;
  const ch = new BC(name);
  return {
    post: (m) => ch.postMessage(m),
    onMessage: (handler) => { ch.onmessage = (ev: MessageEvent) => handler(ev.data as Message); },
    close: () => ch.close(),
  };
}
