# shellcheck shell=bash
# Sourced by the experiment scripts, after they set R (their output folder): `stage NAME COMMAND...`
# runs COMMAND unless $R/.NAME.done exists, its output appended to $R/NAME.log, and drops that
# marker when it succeeds, so a killed script resumes at the stage it was in.
stage() {
  local name=$1; shift
  [ -f "$R/.$name.done" ] && return 0
  echo "$(date -u +%H:%M:%S) $name"
  "$@" >> "$R/$name.log" 2>&1
  touch "$R/.$name.done"
}
