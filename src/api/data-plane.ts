import type { FastifyInstance } from 'fastify';
import type { Services } from '../services/index.js';

/** Byte routes outside ZStack's API: image upload (PUT) and export (GET with Range). */
export function registerDataPlane(_app: FastifyInstance<any, any, any, any>, _services: Services): void {}
