r"""Clears the outputs of notebooks before they are committed.

  python colabs/clear_outputs.py colabs/*.ipynb

The notebooks are committed without outputs, so a diff shows code and text
only (colabs/README.md); tests/test_notebooks.py fails on a notebook that
still has some. Removes cell outputs and execution counts, the timings and
Colab bookkeeping that running adds to cell metadata, and saved widget state;
keeps the `parameters` tag and everything else.
"""

import sys

import nbformat

# Cell metadata that executing adds (nbclient's timings; Colab's ids and
# view state); a cell's tags and anything else stay.
RUN_METADATA = ('execution', 'outputId', 'colab', 'executionInfo')


def clear(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
  """Clears `notebook` in place and returns it."""
  notebook.metadata.pop('widgets', None)
  for cell in notebook.cells:
    for key in RUN_METADATA:
      cell.metadata.pop(key, None)
    if cell.cell_type == 'code':
      cell.outputs = []
      cell.execution_count = None
  return notebook


def main(paths: list[str]) -> None:
  for path in paths:
    notebook = nbformat.read(path, as_version=4)
    nbformat.write(clear(notebook), path)


if __name__ == '__main__':
  main(sys.argv[1:])
