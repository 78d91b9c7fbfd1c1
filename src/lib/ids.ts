import { randomUUID } from 'node:crypto';

/** A ZStack uuid: a random (version 4) UUID with the dashes stripped, 32 lower-case hex digits. */
export const newUuid = (): string => randomUUID().replace(/-/g, '');

/** Exactly the pattern ZStack accepts for a well-formed uuid. */
export const UUID_PATTERN = /^[0-9a-f]{8}[0-9a-f]{4}[1-5][0-9a-f]{3}[89ab][0-9a-f]{3}[0-9a-f]{12}$/;

export const isUuid = (value: string): boolean => UUID_PATTERN.test(value);

/** ApiMediatorImpl's check of a create API's `resourceUuid`; returns the message of its SYS.1007, or undefined. */
export const resourceUuidProblem = (value: string | undefined): string | undefined =>
  value === undefined || isUuid(value)
    ? undefined
    : `resourceUuid[${value}] is not a valid uuid. A valid uuid is a UUID(v4 recommended) with '-' stripped. ` +
      'see http://en.wikipedia.org/wiki/Universally_unique_identifier for format of UUID, the regular expression uses' +
      " to validate a UUID is '[0-9a-f]{8}[0-9a-f]{4}[1-5][0-9a-f]{3}[89ab][0-9a-f]{3}[0-9a-f]{12}'";
