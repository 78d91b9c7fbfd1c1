/*
 * Path containment for normalised absolute POSIX paths (no '..', no '//', no trailing '/' except the root
 * itself): what path.resolve and realpath give. Two explicit variants, so every caller says which it means.
 */

const prefixOf = (parent: string): string => (parent.endsWith('/') ? parent : `${parent}/`);

/** `child` lies below `parent`, never `parent` itself: '/a/b' is strictly inside '/a'; '/a' is not. */
export function isStrictlyInside(child: string, parent: string): boolean {
  return child !== parent && child.startsWith(prefixOf(parent));
}

/** `child` is `parent` or lies below it. */
export function isInsideOrSame(child: string, parent: string): boolean {
  return child === parent || child.startsWith(prefixOf(parent));
}
