//! Media: the H.264 codec on both sides of a stream, and the bundled clip.
//!
//! H.264 constrained baseline (`profile-level-id=42e01f`, `packetization-mode=1`) is what the
//! server negotiates: Chromium encodes it (OpenH264) and decodes it (FFmpeg), and OpenH264
//! here is compiled from source, so nothing needs a system codec library at run time.

pub mod clip;
pub mod h264;
pub mod mp4;
