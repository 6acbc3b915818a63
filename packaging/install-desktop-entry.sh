#!/usr/bin/env sh
# Install Flow Studio's menu entry and icon for the current user (Linux, freedesktop.org).
#   packaging/install-desktop-entry.sh [PATH_TO_STUDIO_EXECUTABLE]
# Without an argument the entry runs `studio` from PATH (pip install); pass the frozen build's
# dist/FlowStudio/studio to point the entry at it.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
app_id=io.github.flowstudio.FlowStudio
data=${XDG_DATA_HOME:-$HOME/.local/share}
exe=${1:-studio}
# Desktop Entry quoting: Exec takes the program as a quoted argument (inside the quotes ", `, $
# and \ are escaped with a backslash), and every backslash of a string value is doubled once
# more; TryExec is a plain string value. `|` and `&` would end the sed replacement: escape them.
exec_arg=$(printf '%s' "$exe" | sed -e 's/[\\"`$]/\\&/g' -e 's/\\/\\\\/g')
try_exec=$(printf '%s' "$exe" | sed -e 's/\\/\\\\/g')
for_sed() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
mkdir -p "$data/applications" "$data/icons/hicolor/256x256/apps" "$data/icons/hicolor/scalable/apps"
sed -e "s|^Exec=studio|Exec=\"$(for_sed "$exec_arg")\"|" \
    -e "s|^TryExec=studio|TryExec=$(for_sed "$try_exec")|" \
    "$here/resources/studio.desktop" > "$data/applications/$app_id.desktop"
cp "$here/resources/icons/flow-studio.png" "$data/icons/hicolor/256x256/apps/$app_id.png"
cp "$here/resources/icons/flow-studio.svg" "$data/icons/hicolor/scalable/apps/$app_id.svg"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "installed $data/applications/$app_id.desktop"
