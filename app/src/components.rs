//! The page frame's pieces and the studio's panels, one component (family) per file.

mod download_card;
mod header;
mod input_panel;
mod pager;
mod presets;
mod prompt_dock;
mod rename_form;
mod settings_panel;
mod status_bar;
mod studio_status;
mod toasts;
mod video_output;

pub use download_card::DownloadCard;
pub use header::Header;
pub use input_panel::InputAndControlsPanel;
pub use pager::Pager;
pub use presets::PresetsSection;
pub use prompt_dock::PromptDock;
pub use rename_form::RenameForm;
pub use settings_panel::SettingsPanel;
pub use status_bar::StatusBar;
pub use studio_status::StudioStatus;
pub use toasts::Toasts;
pub use video_output::VideoOutput;
