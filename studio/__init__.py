"""What people touch: the generation core, the Typer CLI and the Textual studio."""
