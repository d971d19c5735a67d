//! Lock-screen teardown: watches logind over D-Bus and ends every session on lock or sleep.
