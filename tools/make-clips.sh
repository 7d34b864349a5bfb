#!/usr/bin/env bash
# Regenerates the project's own test clips (committed; run only to change them):
#   public/clips/test.mp4   the browser's bundled input clip (Video mode)
#   server/assets/vod.h264  the `vod` pipeline's clip (raw Annex-B H.264, decoded in-process)
# Both are the same 3 s, 512x512, 30 fps animation: drifting gradients under a Game of Life,
# drawn by ffmpeg's synthetic sources. H.264 constrained baseline, no B-frames, so OpenH264
# decodes it and browsers play it. Needs Debian's ffmpeg (apt-get install ffmpeg).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=(-f lavfi -i "gradients=s=512x512:r=30:d=3:speed=0.015:n=4"
     -f lavfi -i "life=s=128x128:r=30:mold=20:life_color=#ffffff:death_color=#000000:ratio=0.25:seed=7,scale=512:512:flags=neighbor")
FILTER="[0][1]blend=all_mode=screen:all_opacity=0.35,format=yuv420p"
ENC=(-t 3 -c:v libx264 -profile:v baseline -level 3.1 -g 30 -bf 0 -crf 31 -an)
ffmpeg -hide_banner -loglevel error -y "${SRC[@]}" -filter_complex "$FILTER" "${ENC[@]}" \
  -movflags +faststart public/clips/test.mp4
ffmpeg -hide_banner -loglevel error -y "${SRC[@]}" -filter_complex "$FILTER" "${ENC[@]}" \
  -bsf:v h264_mp4toannexb -f h264 server/assets/vod.h264
ls -l public/clips/test.mp4 server/assets/vod.h264
