//! The online services' functional core: questions professionals' software
//! asks (a patient's rights on a date), answered from the stages' own state,
//! with no I/O. The HTTP shell (`clearing serve`) finds the partition's store
//! ([`crate::runtime::queries`]) and hands it here.

pub mod eu;
pub mod rights;
