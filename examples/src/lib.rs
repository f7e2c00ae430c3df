//! Jobs shared by the example producer and worker.
