/** A 4xx answered by the REST layer itself: plain text, as ZStack's RestServer does. */
export class RestError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'RestError';
  }
}
