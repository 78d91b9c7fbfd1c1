import { randomUUID } from 'node:crypto';

/** A ZStack uuid: a random (version 4) UUID with the dashes stripped, 32 lower-case hex digits. */
export const newUuid = (): string => randomUUID().replace(/-/g, '');

/** Exactly the pattern ZStack accepts for a well-formed uuid. */
export const UUID_PATTERN = /^[0-9a-f]{8}[0-9a-f]{4}[1-5][0-9a-f]{3}[89ab][0-9a-f]{3}[0-9a-f]{12}$/;

export const isUuid = (value: string): boolean => UUID_PATTERN.test(value);
