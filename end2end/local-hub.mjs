// A Hugging Face Hub on loopback for the download spec: serves the files under ROOT in the hub's
// URL layout. `HEAD`/`GET /{org}/{name}/resolve/{revision}/{path}` answer a redirect (as for LFS
// files) carrying X-Repo-Commit, X-Linked-Etag (the sha256), X-Linked-Size and ETag; `/lfs/...`
// sends the bytes in 16 KiB chunks, honouring `Range: bytes=N-`. `POST /_control?delay_ms=N`
// slows the chunks down (so a test can watch and cancel a download).
//
// Usage: node local-hub.mjs ROOT PORT
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";

const [root, port] = [path.resolve(process.argv[2]), Number(process.argv[3])];
const COMMIT = "5a1ec0de5a1ec0de5a1ec0de5a1ec0de5a1ec0de";
let delayMs = 0;
fs.mkdirSync(root, { recursive: true });

/** The file at a repository path, or null (never outside ROOT). */
function fileOf(rel) {
  const p = path.resolve(root, rel);
  return p.startsWith(root + path.sep) && fs.existsSync(p) && fs.statSync(p).isFile() ? p : null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

http
  .createServer(async (req, res) => {
    const url = new URL(req.url, "http://hub");
    if (url.pathname === "/health") return res.end("ok");
    if (url.pathname === "/_control" && req.method === "POST") {
      delayMs = Number(url.searchParams.get("delay_ms") ?? 0);
      return res.end(JSON.stringify({ delay_ms: delayMs }));
    }
    const resolve = url.pathname.match(/^\/([^/]+)\/([^/]+)\/resolve\/[^/]+\/(.+)$/);
    if (resolve) {
      const rel = `${resolve[1]}/${resolve[2]}/${decodeURIComponent(resolve[3])}`;
      const file = fileOf(rel);
      if (!file) {
        res.statusCode = 404;
        return res.end();
      }
      const bytes = fs.readFileSync(file);
      const sha = createHash("sha256").update(bytes).digest("hex");
      res.writeHead(302, {
        "x-repo-commit": COMMIT,
        "x-linked-etag": `"${sha}"`,
        "x-linked-size": String(bytes.length),
        etag: `"${sha}"`,
        location: `/lfs/${rel}`,
      });
      return res.end();
    }
    const lfs = url.pathname.match(/^\/lfs\/(.+)$/);
    const file = lfs && fileOf(decodeURIComponent(lfs[1]));
    if (!file) {
      res.statusCode = 404;
      return res.end();
    }
    const bytes = fs.readFileSync(file);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = Math.min(range ? Number(range[1]) : 0, bytes.length);
    res.writeHead(start > 0 ? 206 : 200, { "content-length": String(bytes.length - start) });
    for (let at = start; at < bytes.length; at += 16 * 1024) {
      if (delayMs > 0) await sleep(delayMs);
      if (res.destroyed) return;
      res.write(bytes.subarray(at, Math.min(at + 16 * 1024, bytes.length)));
    }
    res.end();
  })
  .listen(port, "127.0.0.1");
