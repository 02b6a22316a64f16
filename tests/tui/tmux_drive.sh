#!/usr/bin/env bash
# Drive the installed `poetstudio` studio in a real terminal (tmux): open it, pick joy, write a
# poem from a first line, save it, quit. Uses a throwaway data home with tiny LoRAs built by
# the test helpers, so it runs offline in well under a minute.
#
# Usage: tests/tui/tmux_drive.sh        (from anywhere; exits 0 on success)
# Timeouts (seconds) can be raised on slow machines: DRIVE_START_S, DRIVE_LOAD_S, DRIVE_POEM_S.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$REPO/.venv/bin/python"
STUDIO="$REPO/.venv/bin/poetstudio"
START_S="${DRIVE_START_S:-60}"
LOAD_S="${DRIVE_LOAD_S:-90}"
POEM_S="${DRIVE_POEM_S:-90}"
FIRST_LINE="The lamps are out along the quay"
SESSION="studio"
HOME_DIR="$(mktemp -d "${TMPDIR:-/tmp}/poetstudio-drive.XXXXXX")"

# A private tmux server whose socket lives in the temp dir: it never touches the user's sessions,
# ignores their tmux.conf, and leaves nothing behind.
tm() { tmux -S "$HOME_DIR/tmux.sock" -f /dev/null "$@"; }

cleanup() {
    tm kill-server >/dev/null 2>&1 || true
    rm -rf "$HOME_DIR"
}
trap cleanup EXIT
# Exit (and so clean up) when told to stop, e.g. by a test runner's timeout.
trap 'exit 143' TERM INT

step() { printf '==> %s\n' "$*"; }

pane() { tm capture-pane -p -t "$SESSION" 2>/dev/null || true; }

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    printf -- '--- last captured pane ---\n%s\n--------------------------\n' "$LAST_PANE" >&2
    exit 1
}

LAST_PANE=""
# wait_for SECONDS FIXED-STRING WHAT: poll the pane until it shows the string.
wait_for() {
    local limit="$1" needle="$2" what="$3" deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        LAST_PANE="$(pane)"
        if grep -qF -- "$needle" <<<"$LAST_PANE"; then
            return 0
        fi
        sleep 0.5
    done
    fail "no '$needle' on screen after ${limit}s ($what)"
}

command -v tmux >/dev/null || fail "tmux is not installed"
[[ -x "$STUDIO" ]] || fail "no installed poetstudio at $STUDIO (run: make setup)"

step "building tiny models for every emotion in $HOME_DIR"
# Every emotion gets a tiny user model, which wins over the bundled one: passing an emotion in
# the picker preloads its model, and a bundled model would need the real base.
(cd "$REPO" && "$PY" -c '
import json, shutil, sys
from pathlib import Path
from tests.helpers.models import build_tiny_base, build_tiny_lora
from trainer.common.emotions import MODEL_EMOTIONS
home = Path(sys.argv[1])
base = build_tiny_base(home / "tiny-base")
joy = build_tiny_lora(base, home / "models" / "joy", "joy")
for emotion in MODEL_EMOTIONS:
    if emotion != "joy":
        folder = shutil.copytree(joy, home / "models" / emotion)
        manifest = json.loads((folder / "poetstudio.json").read_text())
        manifest["emotion"] = emotion
        (folder / "poetstudio.json").write_text(json.dumps(manifest))
' "$HOME_DIR" >"$HOME_DIR/build.log" 2>&1) || { LAST_PANE="$(cat "$HOME_DIR/build.log")"; fail "could not build the tiny model"; }

# The picker starts on the remembered emotion (neutral in a fresh home); the emotions passed on
# the way down to joy, in order.
PATH_TO_JOY="$(cd "$REPO" && "$PY" -c '
from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL
print(" ".join(MODEL_EMOTIONS[MODEL_EMOTIONS.index(NEUTRAL) + 1 : MODEL_EMOTIONS.index("joy") + 1]))
')"

step "starting poetstudio --home $HOME_DIR in tmux (120x40)"
# COLUMNS/LINES from the caller (under pytest they read 80 and 24) would override the pane size.
# A bash wrapper writes the studio's exit status to a file (tmux's pane_dead_status is not always
# recorded: its server sometimes leaves the exited child unreaped); after a failure it keeps the
# pane open so the error stays on screen for the report.
EXIT_FILE="$HOME_DIR/exit_status"
tm new-session -d -s "$SESSION" -x 120 -y 40 -c "$REPO" \
    env -u COLUMNS -u LINES bash -c '"$@"; rc=$?; echo $rc >"$0"; ((rc == 0)) || sleep 600' \
    "$EXIT_FILE" "$STUDIO" --home "$HOME_DIR"
step "tmux window: $(tm display-message -p -t "$SESSION" '#{window_width}x#{window_height}')"
wait_for "$START_S" "First line (or leave empty)" "studio did not open"

step "picking joy (ctrl+down through: $PATH_TO_JOY)"
# One key at a time, each waited for on screen: the status bar names an emotion's model once its
# adapter is ready, so the next key is sent only after the studio has taken the last one (a key
# sent into a busy studio under load was lost, leaving the picker one emotion short).
for emotion in $PATH_TO_JOY; do
    tm send-keys -t "$SESSION" C-Down
    wait_for "$LOAD_S" "$emotion · user lora" "ctrl+down did not reach $emotion"
done

step "typing the first line and pressing Enter"
tm send-keys -t "$SESSION" -l "$FIRST_LINE"
wait_for 10 "$FIRST_LINE" "first line not echoed in the input box"
tm send-keys -t "$SESSION" Enter

step "waiting for the poem to stream in"
# When a poem finishes the status bar shows its token count (and tok/s).
wait_for "$POEM_S" " tokens" "poem did not finish"
status_line="$(grep -F " tokens" <<<"$LAST_PANE" | tail -n 1)"
grep -qE '^ *ready .* [1-9][0-9]* tokens' <<<"$status_line" || fail "poem did not end ready with tokens"
step "status: $(sed 's/^ *//; s/ *$//' <<<"$status_line")"

step "saving with ctrl+s"
tm send-keys -t "$SESSION" C-s
deadline=$((SECONDS + 15))
until [[ -f "$HOME_DIR/poems.md" ]] && grep -qxF -- "- first line: $FIRST_LINE" "$HOME_DIR/poems.md"; do
    ((SECONDS < deadline)) || { LAST_PANE="$(pane)"; fail "poems.md does not hold the first line"; }
    sleep 0.5
done
grep -qxF -- "- emotion: joy" "$HOME_DIR/poems.md" || fail "the saved poem is not marked joy"
grep -qF -- "> $FIRST_LINE" "$HOME_DIR/poems.md" || fail "the saved poem does not open with the first line"
wait_for 10 "Poem saved" "no save notification"

step "a burst of Esc and ctrl+s: the poem stays saved once, no ^ reaches the first-line box"
# In one burst, Textual's parser turns each escape before a ctrl+s into a printable "^" key.
for _ in 1 2 3 4 5 6 7 8; do
    tm send-keys -t "$SESSION" Escape C-s
done
wait_for 10 "already saved to" "no 'already saved' in the status bar"
sleep 1
LAST_PANE="$(pane)"
entries="$(grep -c '^## ' "$HOME_DIR/poems.md" || true)"
((entries == 1)) || fail "poems.md holds $entries entries after the burst, not 1"
box_line="$(grep -F -m 1 -- "$FIRST_LINE" <<<"$LAST_PANE" || true)"
[[ -n "$box_line" ]] || fail "the first line is no longer on screen after the burst"
[[ "$box_line" != *"^"* ]] || fail "a ^ reached the first-line box: $box_line"

step "a paste without brackets: one first line, never submitted"
tm send-keys -t "$SESSION" C-u
tm set-buffer -- $'Pasted one\rpasted two\r'
tm paste-buffer -t "$SESSION"
wait_for 10 "Pasted one pasted two" "the paste is not one line in the first-line box"
sleep 1
LAST_PANE="$(pane)"
grep -qF "Poem 1/1" <<<"$LAST_PANE" || fail "the paste submitted the first-line box"

step "quitting with ctrl+q"
tm send-keys -t "$SESSION" C-q
deadline=$((SECONDS + 30))
until [[ -s "$EXIT_FILE" ]]; do
    ((SECONDS < deadline)) || { LAST_PANE="$(pane)"; fail "the studio did not exit after ctrl+q"; }
    sleep 0.5
done
status="$(<"$EXIT_FILE")"
[[ "$status" == "0" ]] || { LAST_PANE="$(pane)"; fail "the studio exited with status $status"; }
deadline=$((SECONDS + 10))
while tm has-session -t "$SESSION" 2>/dev/null; do
    ((SECONDS < deadline)) || { LAST_PANE="$(pane)"; fail "the tmux session outlived the studio"; }
    sleep 0.5
done

step "ok: opened, picked joy, wrote, saved to poems.md once, pasted, quit (exit 0) in ${SECONDS}s"
