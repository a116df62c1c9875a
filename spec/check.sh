#!/usr/bin/env bash
# Model-checks spec/wake.pml with spin: the wake protocol with waiter sets
# and the sleeper bit (FlagSleeperBit; a waiter that dies registered, a
# sweeper and an attacher that clear its bit under its lock) must verify for
# rings of one and two messages, and four broken variants must fail, which
# shows the check can catch a lost wakeup: no re-check after registering,
# waking before publishing, a sweeper that clears bits without the entry's
# lock, and a re-check before setting the sleeper bit instead of after.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp wake.pml "$work/"
cd "$work"

verify() { # name, spin -D flags...; prints the error count last
  local name=$1; shift
  spin -a "$@" wake.pml >/dev/null
  cc -O2 -DSAFETY -o pan pan.c
  ./pan -m100000 >out.txt 2>&1 || true
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' out.txt | head -1)
  states=$(sed -n 's/^ *\([0-9e.+]*\) states, stored.*/\1/p' out.txt | head -1)
  echo "$name: errors=$errors states=$states" >&2
  grep -m1 -E '^pan:1:' out.txt >&2 || true
  echo "${errors:-missing}"
}

fail=0
for cap in 1 2; do
  e=$(verify "protocol, capacity $cap" -DCAP=$cap -DN=4)
  [ "$e" = 0 ] || { echo "spin found a violation in the real protocol (capacity $cap)"; fail=1; }
done
for mutant in LOST_WAKEUP WAKE_FIRST SWEEP_NOLOCK RECHECK_BEFORE_BIT; do
  e=$(verify "mutant $mutant" -DCAP=1 -DN=4 -D$mutant)
  [ "$e" != 0 ] && [ "$e" != missing ] || { echo "spin did not catch mutant $mutant: the model checks nothing"; fail=1; }
done
[ $fail = 0 ] && echo "spin: wake protocol verified; all four mutants caught"
exit $fail
