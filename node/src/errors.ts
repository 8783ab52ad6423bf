/**
 * Errors. Every failure is a {@link KahunaError} whose `code` is the Rust core client's
 * `Error::code()` string (`core-client/src/error.rs`), or one of the package's own
 * codes (`ABORTED`, `CLOSED`, `LOCK_NOT_ACQUIRED`). {@link ERROR_CLASSES} is the one
 * table from code to class.
 *
 * Negative answers are not errors: a failed compare, a lock held by someone else or
 * a missing key come back as ordinary values (`success === false`).
 */

/** The core client's error codes (`Error::code()` in core-client/src/error.rs). */
export type CoreErrorCode =
  | 'INVALID_ARGUMENT'
  | 'FENCED'
  | 'COMPACTED'
  | 'FUTURE_REVISION'
  | 'MEMBERSHIP'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'LOCK_NOT_HELD'
  | 'CONFIG'
  | 'UNIMPLEMENTED'
  | 'INTERNAL'
  | 'NOT_LEADER'
  | 'NO_LEADER'
  | 'SEQUENCE_EXHAUSTED'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'ALREADY_APPLIED'

/** Codes this package adds: an aborted signal, a closed client, `withLock` not acquiring. */
export type PackageErrorCode = 'ABORTED' | 'CLOSED' | 'LOCK_NOT_ACQUIRED'

/**
 * Every code a {@link KahunaError} can carry. A code the server sends that the core
 * does not classify comes through as is (the `string & {}` member).
 */
export type KahunaErrorCode = CoreErrorCode | PackageErrorCode | (string & {})

/** The base class of every error this package throws. */
export class KahunaError extends Error {
  /** Stable upper-case name of the error, the same in every Kahuna SDK. */
  readonly code: KahunaErrorCode

  constructor(code: KahunaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }

  /** Whether trying the same call again later could succeed (the catalogue's retried kinds). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code)
  }
}

/** Malformed request: bad key, value too large, bad TTL, ... */
export class InvalidArgumentError extends KahunaError {}
/** A fenced write was refused: the fencing lock is no longer held with that token. */
export class FencedError extends KahunaError {}
/** A read asked for a revision that is no longer retained. */
export class CompactedError extends KahunaError {}
/** A read asked for a revision newer than the latest one. */
export class FutureRevisionError extends KahunaError {}
/** A membership change was refused by Raft. */
export class MembershipError extends KahunaError {}
/** No member could serve the request before its deadline. */
export class UnavailableError extends KahunaError {}
/** The call's deadline passed (a mutation may or may not have been applied). */
export class TimeoutError extends KahunaError {}
/** The lock this handle held is gone (lost, expired or released). */
export class LockNotHeldError extends KahunaError {}
/** The endpoints or another client option are unusable. */
export class ConfigError extends KahunaError {}
/** The server does not implement this call. */
export class UnimplementedError extends KahunaError {}
/** The server or the client failed unexpectedly. */
export class InternalError extends KahunaError {}
/** The member asked is not the leader (the core retries this at the leader). */
export class NotLeaderError extends UnavailableError {}
/** The cluster has no leader right now. */
export class NoLeaderError extends UnavailableError {}
/** A sequence has no more ids to give. */
export class SequenceExhaustedError extends KahunaError {}
/** A server limit was reached (for example the idempotency table); try again later. */
export class ResourceExhaustedError extends KahunaError {}
/** The cluster requires a token (`token` option) and none, or an unknown one, was sent. */
export class UnauthenticatedError extends KahunaError {}
/** The token's role or prefix does not allow this call. */
export class PermissionDeniedError extends KahunaError {}
/** A retried call had been applied by an earlier attempt whose answer was too large for the server to keep: read the state to see its effect. */
export class AlreadyAppliedError extends KahunaError {}
/** The call's AbortSignal aborted; the native call was cancelled. `cause` is the signal's reason. */
export class AbortError extends KahunaError {}
/** The client was closed. */
export class ClientClosedError extends KahunaError {}
/** `withLock` could not acquire the lock within its `wait`. */
export class LockNotAcquiredError extends KahunaError {}

/** Codes whose calls may succeed when tried again later (`retried` in proto/src/error_kind.rs). */
const RETRYABLE: ReadonlySet<string> = new Set(['UNAVAILABLE', 'TIMEOUT', 'NOT_LEADER', 'NO_LEADER'])

/** The one table from error code to class. */
export const ERROR_CLASSES: Readonly<Record<CoreErrorCode | PackageErrorCode, typeof KahunaError>> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  FENCED: FencedError,
  COMPACTED: CompactedError,
  FUTURE_REVISION: FutureRevisionError,
  MEMBERSHIP: MembershipError,
  UNAVAILABLE: UnavailableError,
  TIMEOUT: TimeoutError,
  LOCK_NOT_HELD: LockNotHeldError,
  CONFIG: ConfigError,
  UNIMPLEMENTED: UnimplementedError,
  INTERNAL: InternalError,
  NOT_LEADER: NotLeaderError,
  NO_LEADER: NoLeaderError,
  SEQUENCE_EXHAUSTED: SequenceExhaustedError,
  RESOURCE_EXHAUSTED: ResourceExhaustedError,
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
  ALREADY_APPLIED: AlreadyAppliedError,
  ABORTED: AbortError,
  CLOSED: ClientClosedError,
  LOCK_NOT_ACQUIRED: LockNotAcquiredError,
}

/** The error for `code`: its class from {@link ERROR_CLASSES}, else a plain {@link KahunaError}. */
export function kahunaError(code: string, message: string, cause?: unknown): KahunaError {
  const cls = (ERROR_CLASSES as Readonly<Record<string, typeof KahunaError | undefined>>)[code] ?? KahunaError
  return new cls(code, message, cause === undefined ? undefined : { cause })
}

const CODED = /^\[([A-Z0-9_]+)\] ([\s\S]*)$/

/**
 * Converts what the native addon threw (`[CODE] message`, or napi's own argument
 * conversion errors) into a {@link KahunaError}.
 * @internal
 */
export function fromNative(e: unknown): KahunaError {
  if (e instanceof KahunaError) return e
  if (e instanceof Error) {
    const m = CODED.exec(e.message)
    if (m !== null && m[1] !== undefined && m[2] !== undefined) return kahunaError(m[1], m[2])
    // napi-rs rejects arguments it cannot convert (wrong type) before any work starts.
    const napiCode = (e as { code?: unknown }).code
    if (typeof napiCode === 'string' && /Expected|InvalidArg|NumberExpected|StringExpected/.test(napiCode)) {
      return kahunaError('INVALID_ARGUMENT', e.message, e)
    }
    return kahunaError('INTERNAL', e.message, e)
  }
  return kahunaError('INTERNAL', String(e), e)
}
