/**
 * Claim-rule globs: `*` matches any run of characters (slashes included), `?` exactly one,
 * everything else itself. Matching is the classic two-pointer walk with one remembered
 * star, O(pattern × value) in the worst case: no regular expression is built from the
 * rule, so a hostile pattern or claim cannot cause catastrophic backtracking.
 */
export function globMatch(pattern: string, value: string): boolean {
  const p = [...pattern];
  const v = [...value];
  let pi = 0;
  let vi = 0;
  let star = -1;
  let starVi = 0;
  while (vi < v.length) {
    if (pi < p.length && (p[pi] === "?" || (p[pi] !== "*" && p[pi] === v[vi]))) {
      pi++;
      vi++;
    } else if (pi < p.length && p[pi] === "*") {
      star = pi++;
      starVi = vi;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++starVi;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === "*") pi++;
  return pi === p.length;
}
