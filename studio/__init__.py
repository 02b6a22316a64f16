"""What people touch: the UI-free studio core, the Typer CLI and the Textual studio."""
