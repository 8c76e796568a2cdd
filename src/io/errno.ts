// Linux errno values the TUN shell tells apart, with their names for log lines ("EBADFD" says
// more to an operator grepping logs than "errno 77"). Values from asm-generic/errno-base.h and
// asm-generic/errno.h (x86-64 and arm64 share them).

export const EPERM = 1;
export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const EAGAIN = 11;
export const EACCES = 13;
export const EINVAL = 22;
export const ENODEV = 19;
export const EBADFD = 77;
export const EADDRNOTAVAIL = 99;
export const ENETUNREACH = 101;

const NAMES: Record<number, string> = {
  1: "EPERM", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT",
  19: "ENODEV", 21: "EISDIR", 22: "EINVAL", 28: "ENOSPC", 77: "EBADFD", 90: "EMSGSIZE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH",
  105: "ENOBUFS",
};

export function errnoName(code: number): string {
  return NAMES[code] ?? `errno ${code}`;
}

/**
 * The device behind the fd no longer exists: `ip link del` (the kernel then answers EBADFD to
 * read and write, and poll reports POLLERR at once), or the fd itself is invalid. Retrying
 * cannot help; the gateway must stop instead of looking healthy while moving nothing.
 */
export const DEVICE_GONE: ReadonlySet<number> = new Set([EBADF, ENODEV, EBADFD]);

/** A failed system call, carrying its errno so callers can decide without parsing messages. */
export class OsError extends Error {
  constructor(readonly syscall: string, readonly errno: number, detail?: string) {
    super(`${syscall}: ${errnoName(errno)}${detail ? ` (${detail})` : ""}`);
  }
}

/** The errno of the first OsError in `err`'s cause chain. */
export function errnoOf(err: unknown): number | undefined {
  for (let cur = err, depth = 0; cur instanceof Error && depth < 16; cur = cur.cause, depth++) {
    if (cur instanceof OsError) return cur.errno;
  }
  return undefined;
}
