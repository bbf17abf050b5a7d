//! Given/when/then tests of every rule of the sales process, one module per part of the manual,
//! and property tests over random command sequences.

mod fixtures;
mod lead_ownership;
mod lead_progress;
mod lead_work;
mod org_plans_summaries;
mod properties;
mod workflows;
