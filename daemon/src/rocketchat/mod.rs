//! The Rocket.Chat DDP/REST client.
