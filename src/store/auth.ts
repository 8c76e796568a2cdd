// Admin identities: users (Bun.password, argon2id), browser sessions with their CSRF token, and
// API tokens (only a SHA-256 is stored; the token is shown once).
import { and, count, eq, gt, lt } from "drizzle-orm";
import { AuditLog } from "./audit.ts";
import type { Db } from "./database.ts";
import { adminSessions, adminUsers, apiTokens } from "./schema.ts";

export const SESSION_TTL = 12 * 60 * 60 * 1000;

function randomToken(bytes = 32): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url");
}

function sha256(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("hex");
}

export interface Session {
  id: string;
  userId: number;
  username: string;
  csrfToken: string;
  expiresAt: number;
}

export class AdminAuth {
  readonly #audit: AuditLog;
  constructor(private readonly db: Db, private readonly gid?: string) {
    this.#audit = new AuditLog(db, gid);
  }

  userCount(): number {
    return this.db.select({ n: count() }).from(adminUsers).get()?.n ?? 0;
  }

  async createUser(username: string, password: string, actor: string): Promise<void> {
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(username)) throw new Error(`username "${username}" must be 1–64 of A-Z a-z 0-9 _ . @ -`);
    checkPassword(password);
    if (this.#user(username)) throw new UserExistsError(username);
    const passwordHash = await Bun.password.hash(password);
    this.db.insert(adminUsers).values({ username, passwordHash }).run();
    this.#audit.record({ actor, action: "admin.created", subject: username });
  }

  #user(username: string) {
    return this.db.select().from(adminUsers).where(eq(adminUsers.username, username)).get();
  }

  /**
   * Sets a user's password and ends every session of theirs (a password reset is often because
   * one leaked: a browser still logged in with it must not stay in). Returns the sessions ended.
   */
  async setPassword(username: string, password: string, actor: string): Promise<number> {
    checkPassword(password);
    const user = this.#user(username);
    if (!user) throw new Error(`no admin user "${username.slice(0, 64)}"`);
    const passwordHash = await Bun.password.hash(password);
    return this.db.transaction((tx) => {
      tx.update(adminUsers).set({ passwordHash }).where(eq(adminUsers.id, user.id)).run();
      const ended = tx.delete(adminSessions).where(eq(adminSessions.userId, user.id)).returning({ id: adminSessions.id }).all().length;
      new AuditLog(tx as unknown as Db, this.gid).record({ actor, action: "admin.password_changed", subject: username, reason: `${ended} session(s) ended` });
      return ended;
    });
  }

  /** Checks a login; records success or failure in the audit trail. */
  async login(username: string, password: string, remote: string): Promise<Session | undefined> {
    const user = this.db.select().from(adminUsers).where(eq(adminUsers.username, username)).get();
    // Verify against a dummy hash when the user is unknown, so timing does not reveal usernames.
    const ok = await Bun.password.verify(password, user?.passwordHash ?? (await dummyHash())).catch(() => false);
    if (!user || !ok) {
      this.#audit.record({ actor: `anonymous@${remote}`, action: "admin.login_failed", subject: username.slice(0, 64), reason: user ? "wrong password" : "unknown user" });
      return undefined;
    }
    const session = { id: randomToken(), userId: user.id, csrfToken: randomToken(), expiresAt: Date.now() + SESSION_TTL };
    this.db.insert(adminSessions).values(session).run();
    this.db.delete(adminSessions).where(lt(adminSessions.expiresAt, Date.now())).run();
    this.#audit.record({ actor: `admin:${user.username}`, action: "admin.login", subject: user.username, reason: `from ${remote}` });
    return { ...session, username: user.username };
  }

  session(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const row = this.db.select({ s: adminSessions, username: adminUsers.username }).from(adminSessions)
      .innerJoin(adminUsers, eq(adminUsers.id, adminSessions.userId))
      .where(and(eq(adminSessions.id, id), gt(adminSessions.expiresAt, Date.now()))).get();
    return row ? { ...row.s, username: row.username } : undefined;
  }

  logout(id: string): void {
    this.db.delete(adminSessions).where(eq(adminSessions.id, id)).run();
  }

  createToken(name: string, actor: string): string {
    const token = `gg_${randomToken()}`;
    this.db.insert(apiTokens).values({ name, tokenHash: sha256(token) }).run();
    this.#audit.record({ actor, action: "token.created", subject: name });
    return token;
  }

  /** The token's name when it is valid. */
  verifyToken(token: string): string | undefined {
    const row = this.db.select().from(apiTokens).where(eq(apiTokens.tokenHash, sha256(token))).get();
    if (!row) return undefined;
    this.db.update(apiTokens).set({ lastUsedAt: Date.now() }).where(eq(apiTokens.id, row.id)).run();
    return row.name;
  }
}

/** A user that exists already (`admin create` points to `admin passwd`). */
export class UserExistsError extends Error {
  constructor(readonly username: string) {
    super(`admin user "${username}" already exists`);
    this.name = "UserExistsError";
  }
}

function checkPassword(password: string): void {
  if (password.length < 8) throw new Error("password must have at least 8 characters");
}

/**
 * Made on the first login attempt, not at import: an argon2 hash takes ~0.6 s of CPU, which every
 * gateway start paid before it could serve a packet. Made once (the promise is kept).
 */
let dummy: Promise<string> | undefined;
function dummyHash(): Promise<string> {
  return (dummy ??= Bun.password.hash("glassgate-dummy-password"));
}
