//! Hand-outs of a run: standalone HTML, SVG or mermaid text, chosen by the file's extension.

use std::path::{Path, PathBuf};

use playbook_trace::Run;

use crate::render;

/// A hand-out format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// One file that opens offline: the diagram with every exchange's details.
    Html,
    Svg,
    Mermaid,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot tell the export format of {0}: name it .html, .svg or .mmd")]
    UnknownFormat(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Export {
    /// Each format with its extension (the one home of both).
    pub const ALL: [(Export, &'static str); 3] = [
        (Export::Html, "html"),
        (Export::Svg, "svg"),
        (Export::Mermaid, "mmd"),
    ];

    /// The format a path's extension names.
    pub fn for_path(path: &Path) -> Result<Self, ExportError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        Self::ALL
            .iter()
            .find(|(_, ext)| ext.eq_ignore_ascii_case(extension))
            .map(|(format, _)| *format)
            .ok_or_else(|| ExportError::UnknownFormat(path.to_owned()))
    }

    pub fn extension(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(format, _)| *format == self)
            .map(|(_, ext)| *ext)
            .expect("every format is listed")
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Export::Html => "text/html; charset=utf-8",
            Export::Svg => "image/svg+xml",
            Export::Mermaid => "text/plain; charset=utf-8",
        }
    }

    pub fn render(self, run: &Run) -> String {
        match self {
            Export::Html => render::page(run, &render::PageFor::HandOut),
            Export::Svg => render::svg(run),
            Export::Mermaid => render::mermaid(run),
        }
    }

    /// Writes the run to `path` in the format its extension names.
    pub fn write(path: &Path, run: &Run) -> Result<(), ExportError> {
        let format = Self::for_path(path)?;
        std::fs::write(path, format.render(run)).map_err(|source| ExportError::Write {
            path: path.to_owned(),
            source,
        })
    }
}
