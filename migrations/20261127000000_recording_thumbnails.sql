-- Recordings may carry a JPEG thumbnail (made by the browser when the recording stops),
-- stored beside the video in <data-dir>/recordings/. NULL: no thumbnail.
ALTER TABLE recordings ADD COLUMN thumbnail_file TEXT;
