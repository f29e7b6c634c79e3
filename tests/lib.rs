//! Nothing lives here: the root package only carries the integration tests in this folder.
