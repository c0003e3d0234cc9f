"""The documentation's relative links and images point at files that exist.

docs/reproductions.md and the README show figures committed under docs/; a
renamed or missing file would leave a broken image that nothing else notices.
"""

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# [text](target) and ![alt](target); the target ends at the first space or ')'.
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)')
DOCUMENTS = sorted(
    os.path.relpath(path, REPO)
    for pattern in ('README.md', 'docs/*.md', 'colabs/README.md')
    for path in glob.glob(os.path.join(REPO, pattern)))


def relative_targets(text):
  """The link targets in `text` that name a file in this repository."""
  for target in LINK.findall(text):
    if re.match(r'[a-z]+:', target) or target.startswith('#'):
      continue  # A URL or an anchor of the same page.
    yield target.split('#')[0]


def test_link_pattern_finds_links_and_images():
  text = ('See [the docs](docs/a.md#part), ![a figure](images/b.png "title") '
          'and [a site](https://example.com), [here](#top).')
  assert list(relative_targets(text)) == ['docs/a.md', 'images/b.png']


def test_there_are_documents_to_check():
  assert 'README.md' in DOCUMENTS and 'docs/reproductions.md' in DOCUMENTS


@pytest.mark.parametrize('document', DOCUMENTS)
def test_every_relative_link_resolves(document):
  with open(os.path.join(REPO, document), encoding='utf-8') as f:
    text = f.read()
  directory = os.path.dirname(os.path.join(REPO, document))
  missing = [target for target in relative_targets(text)
             if not os.path.exists(os.path.join(directory, target))]
  assert not missing, f'{document} links to missing files: {missing}'
