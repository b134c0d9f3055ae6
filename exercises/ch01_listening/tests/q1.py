OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> p = torch.rand(4, 2, 9, 7)\n'
                                               '>>> with own_work():\n'
                                               '...     m = ratio_masks(p)\n'
                                               ">>> assert m.shape == p.shape, f'expected shape {tuple(p.shape)}, got {tuple(m.shape)}'\n"
                                               ">>> assert (m >= 0).all() and (m <= 1).all(), 'masks lie in [0, 1]'\n"
                                               ">>> assert torch.allclose(m.sum(0), torch.ones(2, 9, 7), atol=1e-06), 'the masks of a bin add up to 1 over the sources'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
