//! Writing PyTorch checkpoints (`torch.save`'s zip format) without torch: how
//! `engine make-tiny` writes model sets in the published file layouts.
//!
//! The archive holds `archive/data.pkl` (a protocol-2 pickle of nested dicts whose leaves
//! are `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`,
//! each storage a persistent id `('storage', torch.<Type>Storage, key, 'cpu', numel)`),
//! `archive/data/<key>` (each storage's raw little-endian bytes, 64-byte aligned as torch
//! writes them), `archive/byteorder` and `archive/version`.

use burn::tensor::{DType, TensorData};
use std::{collections::BTreeMap, io::Write, path::Path};
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

/// A tree of tensors: what a `.pt` file holds.
#[derive(Clone, Debug)]
pub enum Node {
    Tensor(TensorData),
    Dict(BTreeMap<String, Node>),
}

impl Node {
    /// A dict of tensors.
    pub fn tensors(t: impl IntoIterator<Item = (String, TensorData)>) -> Self {
        Node::Dict(t.into_iter().map(|(k, v)| (k, Node::Tensor(v))).collect())
    }

    /// A dict of nodes.
    pub fn dict(t: impl IntoIterator<Item = (String, Node)>) -> Self {
        Node::Dict(t.into_iter().collect())
    }
}

struct Pickler {
    out: Vec<u8>,
    storages: Vec<(String, Vec<u8>)>,
}

impl Pickler {
    fn string(&mut self, s: &str) {
        self.out.push(b'X'); // BINUNICODE
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn int(&mut self, v: i64) {
        if let Ok(v) = i32::try_from(v) {
            self.out.push(b'J'); // BININT
            self.out.extend(v.to_le_bytes());
        } else {
            self.out.push(0x8a); // LONG1
            self.out.push(8);
            self.out.extend(v.to_le_bytes());
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend(name.as_bytes());
        self.out.push(b'\n');
    }

    fn tuple_of(&mut self, values: &[i64]) {
        self.out.push(b'(');
        for v in values {
            self.int(*v);
        }
        self.out.push(b't');
    }

    fn tensor(&mut self, t: &TensorData) -> Result<(), String> {
        let storage = match t.dtype {
            DType::F32 => "FloatStorage",
            DType::BF16 => "BFloat16Storage",
            DType::F16 => "HalfStorage",
            other => return Err(format!("cannot write {other:?} tensors")),
        };
        let key = self.storages.len().to_string();
        let shape: Vec<i64> = t.shape.iter().map(|d| *d as i64).collect();
        let mut stride = vec![1i64; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        let numel: i64 = shape.iter().product();
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(b'(');
        self.out.push(b'(');
        self.string("storage");
        self.global("torch", storage);
        self.string(&key);
        self.string("cpu");
        self.int(numel);
        self.out.push(b't');
        self.out.push(b'Q'); // BINPERSID
        self.int(0);
        self.tuple_of(&shape);
        self.tuple_of(&stride);
        self.out.push(0x89); // NEWFALSE
        self.global("collections", "OrderedDict");
        self.out.push(b')');
        self.out.push(b'R');
        self.out.push(b't');
        self.out.push(b'R');
        self.storages.push((key, t.as_bytes().to_vec()));
        Ok(())
    }

    fn node(&mut self, n: &Node) -> Result<(), String> {
        match n {
            Node::Tensor(t) => self.tensor(t),
            Node::Dict(d) => {
                self.out.push(b'}');
                if !d.is_empty() {
                    self.out.push(b'(');
                    for (k, v) in d {
                        self.string(k);
                        self.node(v)?;
                    }
                    self.out.push(b'u'); // SETITEMS
                }
                Ok(())
            }
        }
    }
}

/// Writes `root` (a dict) as a torch zip checkpoint.
pub fn write(path: &Path, root: &Node) -> Result<(), String> {
    let mut p = Pickler {
        out: vec![0x80, 2],
        storages: Vec::new(),
    };
    p.node(root)?;
    p.out.push(b'.');
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut zip = ZipWriter::new(std::io::BufWriter::new(file));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(true);
    let mut put = |name: &str, bytes: &[u8], align: u16| -> Result<(), String> {
        zip.start_file(format!("archive/{name}"), opts.with_alignment(align))
            .and_then(|_| zip.write_all(bytes).map_err(Into::into))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    put("data.pkl", &p.out, 1)?;
    put("byteorder", b"little", 1)?;
    for (key, bytes) in &p.storages {
        put(&format!("data/{key}"), bytes, 64)?;
    }
    put("version", b"3\n", 1)?;
    zip.finish()
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wan::weights::{Variant, read_tensors};

    #[test]
    fn a_written_checkpoint_reads_back_with_its_containers() {
        let dir = tempfile::tempdir().unwrap();
        let w = TensorData::new(vec![1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0], [2, 3]);
        let b = TensorData::new(vec![0.5f32, 1.0], [2]).convert_dtype(DType::BF16);
        let model = Node::tensors([
            ("model.head.weight".to_owned(), w.clone()),
            ("model.head.bias".to_owned(), b.clone()),
        ]);
        let root = Node::dict([
            ("generator".to_owned(), model.clone()),
            ("generator_ema".to_owned(), model),
        ]);
        let path = dir.path().join("ck.pt");
        write(&path, &root).unwrap();
        let t = read_tensors(&path, Variant::Ema, DType::F32).unwrap();
        assert_eq!(t.keys().collect::<Vec<_>>(), ["head.bias", "head.weight"]);
        assert_eq!(t["head.weight"], w);
        assert_eq!(t["head.bias"].dtype, DType::BF16);
        assert_eq!(t["head.bias"], b);
    }
}
